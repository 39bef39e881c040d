// Checks of single config fields that several validation sections share:
// a file the broker will read, a positive duration, a list of scopes. Each
// adds what it finds to `problems`, naming `path` (the JSON field path).
//
// Internal to config validation (server/config_validator*.cc).
// Thread-safety: thread-compatible (RequireFile reads the file system).
#ifndef TREEZOR_BROKER_SERVER_CONFIG_FIELD_CHECKS_H_
#define TREEZOR_BROKER_SERVER_CONFIG_FIELD_CHECKS_H_

#include <string>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "server/config_problems.h"

namespace treezor::broker::internal {

// A file that must be named, exist, be a readable regular file and not be
// empty. (Read through a wiped buffer: it may be a private key.)
void RequireFile(const std::string& path, const std::string& file,
                 ConfigProblems& problems);

// "must be positive, got <d>" unless `d` > 0.
void RequirePositive(const std::string& path,
                     const google::protobuf::Duration& d,
                     ConfigProblems& problems);

// Every scope of `scopes` well formed (ValidateScope), each problem naming
// "path[i]".
void ValidateScopes(
    const std::string& path,
    const google::protobuf::RepeatedPtrField<std::string>& scopes,
    ConfigProblems& problems);

}  // namespace treezor::broker::internal

#endif  // TREEZOR_BROKER_SERVER_CONFIG_FIELD_CHECKS_H_
