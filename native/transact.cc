// netlinkTransact: netlink transactions on one thread of ours, in the order
// they were asked for (linkCarrier's ioctl among them). While the kernel works (or waits for the rtnl lock its
// own deferred work holds), the main thread goes on with JavaScript; and the
// thread starts the next transaction as soon as one ends, without waiting for
// JavaScript to hand it over. Completions reach the main thread in batches.
// A transaction asked for "alone" runs on a thread of its own instead: one the
// kernel keeps waiting long after its work is visible (a link deletion waits
// inside sendmsg for an RCU barrier before the memory is freed) then holds up
// no other.

#include <napi.h>

#include "errors.h"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>
#include <csignal>
#include <linux/ethtool.h>
#include <linux/netlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace {

// A transaction (request: netlink messages), or with ifname a carrier query.
struct Job {
  Job(int fd, const uint8_t* data, size_t len, std::string ifname, Napi::Promise::Deferred deferred)
      : fd(fd), request(data, data + len), ifname(std::move(ifname)), deferred(deferred) {}
  int fd;
  std::vector<uint8_t> request;
  std::string ifname;
  Napi::Promise::Deferred deferred;
  std::vector<uint8_t> replies;
  bool carrier = false;
  int err = 0;
  const char* syscall = "sendmsg";
};

// ETHTOOL_GLINK on ifname, in the netns of socket fd (any socket: the kernel
// hands ioctls a socket does not know to the device). The kernel first
// applies the device's pending carrier change (linkwatch) to it: a bridge
// port whose carrier just came is forwarding (no STP) when this returns.
int LinkCarrier(int fd, const std::string& ifname, bool* carrier) {
  struct ethtool_value value = {};
  value.cmd = ETHTOOL_GLINK;
  struct ifreq ifr = {};
  memcpy(ifr.ifr_name, ifname.data(), std::min(ifname.size(), sizeof(ifr.ifr_name) - 1));
  ifr.ifr_data = reinterpret_cast<char*>(&value);
  int r;
  do r = ioctl(fd, SIOCETHTOOL, &ifr);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno;
  *carrier = value.data != 0;
  return 0;
}

// One transaction: sends request (one or more messages) to the kernel as one
// datagram, then appends to replies every datagram the kernel queued for the
// socket in answer, each padded to 4 bytes so the messages read as one run.
// rtnetlink answers inside sendmsg (and a dump queues its next part inside
// each read), so draining until the queue is empty collects every reply: no
// poll round trip, no peeking read. Returns 0, or an errno (call in *syscall).
int Transact(int fd, const std::vector<uint8_t>& request, std::vector<uint8_t>& replies, const char** syscall) {
  struct iovec iov = {const_cast<uint8_t*>(request.data()), request.size()};
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  struct msghdr msg = {};
  msg.msg_name = &kernel;
  msg.msg_namelen = sizeof(kernel);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t sent;
  do sent = sendmsg(fd, &msg, 0);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    *syscall = "sendmsg";
    return errno;
  }
  // 32 KiB per datagram: the most the kernel puts in one (dump parts are sized to the reader's buffer, capped there).
  constexpr size_t kSlot = 32768, kSlots = 16;
  thread_local std::unique_ptr<uint8_t[]> arena(new uint8_t[kSlot * kSlots]);
  struct mmsghdr msgs[kSlots];
  struct iovec slots[kSlots];
  struct sockaddr_nl from[kSlots];
  *syscall = "recvmmsg";
  for (;;) {
    for (size_t i = 0; i < kSlots; i++) {
      slots[i] = {arena.get() + i * kSlot, kSlot};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
      msgs[i].msg_hdr.msg_iov = &slots[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(fd, msgs, kSlots, MSG_DONTWAIT, nullptr);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return errno;
    }
    for (int i = 0; i < got; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) return EMSGSIZE;  // over 32 KiB: not rtnetlink as we use it
      if (from[i].nl_pid != 0) continue;                           // only the kernel answers requests
      const uint8_t* d = static_cast<uint8_t*>(slots[i].iov_base);
      replies.insert(replies.end(), d, d + msgs[i].msg_len);
      replies.resize((replies.size() + 3) & ~size_t(3), 0);
    }
    // Fewer than asked: the last read found the queue empty.
    if (static_cast<size_t>(got) < kSlots) return 0;
  }
}

class NetlinkThread;
void Complete(Napi::Env env, Napi::Function, NetlinkThread* self, Job* job);
using Completions = Napi::TypedThreadSafeFunction<NetlinkThread, Job, Complete>;

// One per Node environment (the main thread, each worker thread).
class NetlinkThread {
 public:
  explicit NetlinkThread(Napi::Env env) : completions_(Completions::New(env, "pipework-netlink", 0, 1, this)) {
    completions_.Unref(env);  // only jobs in flight keep the process alive
    env.AddCleanupHook([this] { Stop(); });
  }

  Napi::Promise Submit(Napi::Env env, int fd, const uint8_t* data, size_t len, bool alone, std::string ifname = "") {
    auto* job = new Job(fd, data, len, std::move(ifname), Napi::Promise::Deferred::New(env));
    Napi::Promise promise = job->deferred.Promise();
    if (alone) {
      std::lock_guard<std::mutex> lock(mutex_);
      try {
        std::thread([this, job] { RunAlone(job); }).detach();
      } catch (const std::system_error& e) {
        delete job;
        throw ErrnoError(env, e.code().value(), "pthread_create");
      }
      alone_++;
      if (in_flight_++ == 0) completions_.Ref(env);
      return promise;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!thread_.joinable()) {
        try {
          thread_ = std::thread([this] { Run(); });
        } catch (const std::system_error& e) {
          delete job;
          throw ErrnoError(env, e.code().value(), "pthread_create");
        }
      }
      queue_.push_back(job);
    }
    if (in_flight_++ == 0) completions_.Ref(env);
    wake_.notify_one();
    return promise;
  }

  // On the main thread: settles the job's promise.
  void Settle(Napi::Env env, Job* job) {
    if (--in_flight_ == 0) completions_.Unref(env);
    if (job->err != 0) {
      job->deferred.Reject(ErrnoError(env, job->err, job->syscall, job->ifname).Value());
      return;
    }
    if (!job->ifname.empty()) {
      job->deferred.Resolve(Napi::Boolean::New(env, job->carrier));
      return;
    }
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, job->replies.size());
    if (!job->replies.empty()) memcpy(out.Data(), job->replies.data(), job->replies.size());
    job->deferred.Resolve(Napi::Uint8Array::New(env, job->replies.size(), out, 0));
  }

 private:
  // Signals are the main thread's business (libuv handles them there).
  static void BlockSignals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
  }

  // A transaction on a thread of its own; Stop() waits for every such thread to be done with this object.
  void RunAlone(Job* job) {
    BlockSignals();
    job->err = Transact(job->fd, job->request, job->replies, &job->syscall);
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || completions_.NonBlockingCall(job) != napi_ok) delete job;
    if (--alone_ == 0) alone_done_.notify_all();
  }

  void Run() {
    BlockSignals();
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = queue_.front();
        queue_.pop_front();
      }
      if (job->ifname.empty()) {
        job->err = Transact(job->fd, job->request, job->replies, &job->syscall);
      } else {
        job->syscall = "ioctl(SIOCETHTOOL)";
        job->err = LinkCarrier(job->fd, job->ifname, &job->carrier);
      }
      if (completions_.NonBlockingCall(job) != napi_ok) delete job;  // the environment is going away
    }
  }

  // The environment is shutting down: whatever is still queued is dropped with it.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      alone_done_.wait(lock, [this] { return alone_ == 0; });
    }
    for (Job* job : queue_) delete job;
    queue_.clear();
    completions_.Abort();
  }

  Completions completions_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  bool stopping_ = false;
  size_t alone_ = 0;  // threads of RunAlone still running (under mutex_)
  std::condition_variable alone_done_;
  std::thread thread_;
  size_t in_flight_ = 0;  // main thread only
};

void Complete(Napi::Env env, Napi::Function, NetlinkThread* self, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;
  // Nothing may leave this callback: a worker thread being terminated refuses
  // to make the answer or settle the promise, and nobody is left to tell.
  try {
    self->Settle(env, job);
  } catch (const Napi::Error&) {
  }
}

// netlinkTransact(fd, bytes, alone?): a promise of the kernel's answer to bytes
// (netlink messages) sent on socket fd; bytes are copied before it returns.
// alone: on a thread of its own, not after the transactions asked before.
Napi::Value NetlinkTransact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 0)
    throw Napi::TypeError::New(env, "socket must be a non-negative fd");
  if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "bytes must be a Uint8Array");
  Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
  bool alone = info.Length() > 2 && info[2].ToBoolean().Value();
  auto* thread = static_cast<NetlinkThread*>(info.Data());
  return thread->Submit(env, info[0].As<Napi::Number>().Int32Value(), bytes.Data(), bytes.ByteLength(), alone);
}

// linkCarrier(fd, ifname): a promise of whether ifname has carrier, asked
// through socket fd on the netlink thread, after the transactions asked before it.
Napi::Value LinkCarrierQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 0)
    throw Napi::TypeError::New(env, "socket must be a non-negative fd");
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "ifname must be a string");
  std::string ifname = info[1].As<Napi::String>().Utf8Value();
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) throw Napi::TypeError::New(env, "ifname must be 1 to 15 bytes");
  auto* thread = static_cast<NetlinkThread*>(info.Data());
  return thread->Submit(env, info[0].As<Napi::Number>().Int32Value(), nullptr, 0, false, std::move(ifname));
}

}  // namespace

void RegisterTransact(Napi::Env env, Napi::Object exports) {
  auto* thread = new NetlinkThread(env);  // stopped with the environment; its few bytes stay
  exports.Set("netlinkTransact", Napi::Function::New(env, NetlinkTransact, "netlinkTransact", thread));
  exports.Set("linkCarrier", Napi::Function::New(env, LinkCarrierQuery, "linkCarrier", thread));
}
