// OutboundQueue<Message>: the write side of one gRPC callback stream (a ServerWriteReactor
// or ServerBidiReactor). Producers on any thread Push() messages and Close() with a final
// status; the queue keeps exactly one StartWrite in flight and calls Finish exactly once,
// after the last queued message was written (or at once when the client is gone).
//
// It outlives its reactor: the reactor calls Detach() in OnDone, after which Push/Close are
// no-ops. That lets the JobManager hold a shared_ptr to it without caring when the RPC ends.
// It does not bound what is pushed: producers do (the JobFeed's window for event streams).
//
// Thread safety: all methods are thread-safe. A recursive mutex because gRPC may run
// OnWriteDone inline from StartWrite.
#ifndef MAGI_SERVER_OUTBOUND_QUEUE_H_
#define MAGI_SERVER_OUTBOUND_QUEUE_H_

#include <deque>
#include <functional>
#include <mutex>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace magi {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

template <typename Message>
class OutboundQueue {
 public:
  using WriteFn = std::function<void(const Message*)>;
  using FinishFn = std::function<void(const grpc::Status&)>;

  OutboundQueue(WriteFn write, FinishFn finish) : write_(std::move(write)), finish_(std::move(finish)) {}

  void Push(Message message) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (detached_ || closing_) return;
    queue_.push_back(std::move(message));
    PumpLocked();
  }
  // Finish after the queued messages. Later calls are ignored.
  void Close(const grpc::Status& status) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (detached_ || closing_) return;
    closing_ = true;
    status_ = status;
    PumpLocked();
  }
  // The client is gone: drop what is queued and finish as soon as no write is in flight.
  void Abort(const grpc::Status& status) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (detached_) return;
    queue_.clear();
    if (!closing_) {
      closing_ = true;
      status_ = status;
    }
    PumpLocked();
  }
  // From the reactor's OnWriteDone.
  void WriteDone(bool ok) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      queue_.clear();
      if (!closing_) {
        closing_ = true;
        status_ = grpc::Status(grpc::StatusCode::CANCELLED, "client stream broken");
      }
    }
    PumpLocked();
  }
  // From the reactor's OnDone: no more calls into the reactor after this.
  void Detach() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    detached_ = true;
    queue_.clear();
    current_ = Message();  // the last write is over: release its bytes now
  }
  size_t pending() const {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return queue_.size();
  }

 private:
  void PumpLocked() {
    if (detached_ || writing_ || finished_) return;
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      write_(&current_);
      return;
    }
    if (closing_) {
      finished_ = true;
      finish_(status_);
    }
  }

  WriteFn write_;
  FinishFn finish_;
  mutable std::recursive_mutex mu_;
  std::deque<Message> queue_;
  Message current_;
  bool writing_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool detached_ = false;
  grpc::Status status_;
};

}  // namespace magi

#endif  // MAGI_SERVER_OUTBOUND_QUEUE_H_
