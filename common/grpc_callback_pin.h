// Keeps gRPC's process-global callback completion queue alive for the life
// of the process.
//
// gRPC 1.51 serves the callback API (our services, TokenClient) on POSIX from
// one process-global completion queue, reference counted by the channels and
// servers that use it: a channel takes a reference on its first callback-API
// call and drops it when destroyed; at zero gRPC shuts the queue down, joins
// its threads and deletes it. A process that creates and destroys channels or
// servers (a service re-creating its TokenClient, our test suites starting a
// broker per test) runs that teardown again and again and can race it: an
// abort in grpc_cq_internal_unref, "ref_counted.h: assertion failed:
// prior > 0" (found by the flaky-suite hunt, TokenClientTest, about 1 run in
// 100). PinGrpcCallbackQueue() takes one reference that is never dropped — a
// channel kept for the process's life that has made one callback-API call —
// so the count never reaches zero before exit.
//
//   PinGrpcCallbackQueue();  // before the first callback channel or server
//
// Thread-safety: thread-safe and idempotent. Cost: one idle channel (to a
// Unix socket path that does not exist; it never connects).
#ifndef TREEZOR_COMMON_GRPC_CALLBACK_PIN_H_
#define TREEZOR_COMMON_GRPC_CALLBACK_PIN_H_

namespace treezor {

void PinGrpcCallbackQueue();

}  // namespace treezor

#endif  // TREEZOR_COMMON_GRPC_CALLBACK_PIN_H_
