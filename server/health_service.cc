#include "server/health_service.h"

namespace treezor::broker {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

namespace {
constexpr char kLiveness[] = "liveness";
}  // namespace

// Sends the current status, then every change, until the caller hangs up or
// the service ends its watches. Writes are serialised: at most one in flight,
// and only the latest status is kept while one is.
class HealthService::WatchReactor final
    : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  explicit WatchReactor(HealthService* service) : service_(service) {}

  // Called with the service's lock held (registration and status changes).
  void Push(ServingStatus status) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    pending_ = status;
    has_pending_ = true;
    MaybeWriteLocked();
  }
  void End() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    FinishLocked(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    MaybeWriteLocked();
  }
  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    service_->Unregister(this);
    delete this;
  }

 private:
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_ || !has_pending_) return;
    response_.set_status(pending_);
    has_pending_ = false;
    writing_ = true;
    StartWrite(&response_);
  }
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  HealthService* const service_;
  Mutex mu_;
  HealthCheckResponse response_ ABSL_GUARDED_BY(mu_);
  ServingStatus pending_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

HealthService::HealthService(std::vector<std::string> services)
    : services_(services.begin(), services.end()) {}

HealthService::~HealthService() { EndWatches(); }

void HealthService::SetServing(bool serving) {
  MutexLock lock(&mu_);
  if (serving_ == serving) return;
  serving_ = serving;
  for (const auto& [w, service] : watchers_) {
    if (service == kLiveness) continue;
    w->Push(serving ? HealthCheckResponse::SERVING
                    : HealthCheckResponse::NOT_SERVING);
  }
}

bool HealthService::serving() const {
  MutexLock lock(&mu_);
  return serving_;
}

void HealthService::EndWatches() {
  MutexLock lock(&mu_);
  ended_ = true;
  for (const auto& [w, service] : watchers_) w->End();
}

void HealthService::Unregister(WatchReactor* reactor) {
  MutexLock lock(&mu_);
  watchers_.erase(reactor);
}

grpc::ServerUnaryReactor* HealthService::Check(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->service() == kLiveness) {
    response->set_status(HealthCheckResponse::SERVING);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  if (!request->service().empty() && !services_.contains(request->service())) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "unknown service " + request->service()));
    return reactor;
  }
  response->set_status(serving() ? HealthCheckResponse::SERVING
                                 : HealthCheckResponse::NOT_SERVING);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto* reactor = new WatchReactor(this);
  MutexLock lock(&mu_);
  if (ended_) {
    reactor->End();
    return reactor;
  }
  watchers_.emplace(reactor, request->service());
  if (request->service() == kLiveness) {
    reactor->Push(HealthCheckResponse::SERVING);
  } else if (!request->service().empty() &&
             !services_.contains(request->service())) {
    reactor->Push(HealthCheckResponse::SERVICE_UNKNOWN);
  } else {
    reactor->Push(serving_ ? HealthCheckResponse::SERVING
                           : HealthCheckResponse::NOT_SERVING);
  }
  return reactor;
}

}  // namespace treezor::broker
