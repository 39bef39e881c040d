// treezor-token: see client/cli/commands.h and client/README.md.
#include <string>
#include <vector>

#include "client/cli/commands.h"

int main(int argc, char** argv) {
  return treezor::client::cli::Run(std::vector<std::string>(argv + 1, argv + argc));
}
