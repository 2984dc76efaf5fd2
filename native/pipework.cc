// The few system calls Node cannot make: entering network namespaces,
// holding them by fd, and netlink sockets made in them (their transactions:
// transact.cc).
// Every function that enters a namespace leaves it before returning, on
// success and on error alike: the main thread never stays in a foreign netns.

#include <napi.h>

#include "errors.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <string>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
// <linux/nsfs.h> and <linux/pidfd.h> are not on every build host.
#define NS_GET_NSTYPE _IO(0xb7, 0x3)
#define PIDFD_GET_NET_NAMESPACE _IO(0xFF, 4)

// native/spawn.cc: spawnIsolated.
void RegisterSpawn(Napi::Env env, Napi::Object exports);
// native/transact.cc: netlinkTransact.
void RegisterTransact(Napi::Env env, Napi::Object exports);

namespace {

// The namespace this thread started in, opened once when the addon loads.
int home_netns = -1;

// Returning home cannot be allowed to fail silently: continuing would run
// every later operation in the wrong namespace.
void ReturnHome() {
  if (setns(home_netns, CLONE_NEWNET) != 0) {
    perror("pipework: cannot return to the original network namespace");
    abort();
  }
}

int CheckedFd(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a file descriptor number");
  int fd = info[i].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a non-negative fd");
  return fd;
}

// Rejects fds that are not network namespaces, so a wrong fd can never make
// us enter some other kind of namespace or act on an unrelated file.
void RequireNetns(Napi::Env env, int fd, const std::string& what) {
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) throw ErrnoError(env, errno, "ioctl(NS_GET_NSTYPE)", what);
  if (type != CLONE_NEWNET) throw ErrnoError(env, EINVAL, "ioctl(NS_GET_NSTYPE)", what + " is not a network namespace");
}

// withNetns(fd, fn): runs fn() with this thread inside netns fd, then returns
// home even when fn throws. Used to create sockets that belong to a netns.
Napi::Value WithNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(info, 0, "netns");
  if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
  RequireNetns(env, fd, "fd " + std::to_string(fd));
  if (setns(fd, CLONE_NEWNET) != 0) throw ErrnoError(env, errno, "setns");
  Napi::Value result;
  try {
    result = info[1].As<Napi::Function>().Call({});
  } catch (...) {
    ReturnHome();
    throw;
  }
  ReturnHome();
  return result;
}

// netnsInode(fd): the inode that names netns fd (as `ip netns identify`
// compares them); throws unless fd is an open network namespace (EBADF, or
// EINVAL/ENOTTY for anything else).
Napi::Value NetnsInode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(info, 0, "netns");
  RequireNetns(env, fd, "fd " + std::to_string(fd));
  struct stat st;
  if (fstat(fd, &st) != 0) throw ErrnoError(env, errno, "fstat", "fd " + std::to_string(fd));
  return Napi::Number::New(env, static_cast<double>(st.st_ino));
}

// newNetns(): a fresh anonymous netns, held only by the returned fd.
Napi::Value NewNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (unshare(CLONE_NEWNET) != 0) throw ErrnoError(env, errno, "unshare");
  int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int err = errno;
  ReturnHome();
  if (fd < 0) throw ErrnoError(env, err, "open", "/proc/thread-self/ns/net");
  return Napi::Number::New(env, fd);
}

// openNetnsPath(path): a netns file (/run/netns/NAME, /proc/PID/ns/net, ...).
Napi::Value OpenNetnsPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(env, errno, "open", path);
  try {
    RequireNetns(env, fd, path);
  } catch (...) {
    close(fd);
    throw;
  }
  return Napi::Number::New(env, fd);
}

// openNetnsPid(pid): the netns of a process, pinned through a pidfd so that a
// PID that exits or is reused meanwhile cannot hand us another process's netns.
Napi::Value OpenNetnsPid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "pid must be a number");
  int64_t pid = info[0].As<Napi::Number>().Int64Value();
  if (pid <= 0 || pid > 0x3fffffff) throw ErrnoError(env, ESRCH, "pidfd_open", "pid " + std::to_string(pid));
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
  if (pidfd < 0) throw ErrnoError(env, errno, "pidfd_open", "pid " + std::to_string(pid));
  int fd = ioctl(pidfd, PIDFD_GET_NET_NAMESPACE, 0);
  if (fd < 0) {
    // Older kernels: open via /proc, then prove the pidfd's process is still
    // alive, i.e. the /proc entry we opened was that process and not a reuse.
    std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    int err = errno;
    if (fd < 0) {
      close(pidfd);
      throw ErrnoError(env, err, "open", path);
    }
    if (syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) != 0) {
      err = errno;
      close(fd);
      close(pidfd);
      throw ErrnoError(env, err, "pidfd_send_signal", "pid " + std::to_string(pid) + " exited");
    }
  }
  close(pidfd);
  return Napi::Number::New(env, fd);
}

// peerCredentials(fd): the pid, uid and gid of the process at the other end
// of a connected unix socket (SO_PEERCRED: as it was when it connected), for
// the daemon to refuse peers that are neither root nor the socket's owner.
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = CheckedFd(info, 0, "socket");
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    throw ErrnoError(env, errno, "getsockopt(SO_PEERCRED)", "fd " + std::to_string(fd));
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, cred.pid));
  result.Set("uid", Napi::Number::New(env, cred.uid));
  result.Set("gid", Napi::Number::New(env, cred.gid));
  return result;
}

// openNetlinkSocket(netnsFd?): an rtnetlink socket of netns netnsFd (of ours
// without it), asking the kernel for extended ACKs (its error text), capped
// ACKs (no request echoed back), strict checks and a large receive buffer.
// A socket stays in the netns it was made in, so only socket() runs there.
Napi::Value OpenNetlinkSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool foreign = info.Length() > 0 && !info[0].IsUndefined();
  int netns = foreign ? CheckedFd(info, 0, "netns") : -1;
  if (foreign) {
    RequireNetns(env, netns, "fd " + std::to_string(netns));
    if (setns(netns, CLONE_NEWNET) != 0) throw ErrnoError(env, errno, "setns");
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  int err = errno;
  if (foreign) ReturnHome();
  if (fd < 0) throw ErrnoError(env, err, "socket(AF_NETLINK)");
  int one = 1;
  const int options[] = {NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK};
  const char* names[] = {"setsockopt(NETLINK_EXT_ACK)", "setsockopt(NETLINK_CAP_ACK)", "setsockopt(NETLINK_GET_STRICT_CHK)"};
  for (int i = 0; i < 3; i++) {
    if (setsockopt(fd, SOL_NETLINK, options[i], &one, sizeof(one)) != 0) {
      err = errno;
      close(fd);
      throw ErrnoError(env, err, names[i]);
    }
  }
  // One sendmsg may carry hundreds of requests whose replies all queue before
  // the first read: room for them beyond rmem_max when allowed (ENOBUFS otherwise).
  int rcvbuf = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  return Napi::Number::New(env, fd);
}

// strerror(errno): the C library's text ("File exists"), as ip and every tool print it.
Napi::Value StrError(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "errno must be a number");
  return Napi::String::New(info.Env(), strerror(info[0].As<Napi::Number>().Int32Value()));
}

// flock(fd, LOCK_EX | LOCK_NB) or flock(fd, LOCK_UN): the advisory lock other
// programs (the reference host-local IPAM) take on the same file. Never
// blocks the event loop: false when another holder has it.
Napi::Value TryLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "tryLock(fd, lock)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool lock = info[1].As<Napi::Boolean>().Value();
  for (;;) {
    if (flock(fd, lock ? LOCK_EX | LOCK_NB : LOCK_UN) == 0) return Napi::Boolean::New(env, true);
    if (errno == EINTR) continue;
    if (lock && errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    throw ErrnoError(env, errno, "flock");
  }
}

// The regular files of a directory with their first maxBytes bytes, as
// [name, text, name, text, ...] (text null when the file is longer). For
// host-local's store, one small file per reserved address, read whole on
// every call: from JavaScript that is three calls per file, here one.
Napi::Value ReadSmallFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "readSmallFiles(dir, maxBytes)");
  std::string dir = info[0].As<Napi::String>();
  int max = info[1].As<Napi::Number>().Int32Value();
  if (max < 1 || max > 65536) throw Napi::RangeError::New(env, "maxBytes must be 1-65536");
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) throw ErrnoError(env, errno, "open", dir);
  DIR* d = fdopendir(dfd);
  if (!d) {
    int err = errno;
    close(dfd);
    throw ErrnoError(env, err, "fdopendir", dir);
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  std::vector<char> buf(max);
  for (;;) {
    errno = 0;
    struct dirent* e = readdir(d);
    if (!e) break;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) continue;
    // Gone meanwhile, a symlink or (DT_UNKNOWN) a directory: not a file of the store.
    int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t k = read(fd, buf.data(), max);
    close(fd);
    if (k < 0) continue;
    out.Set(n++, Napi::String::New(env, e->d_name));
    out.Set(n++, k == max ? env.Null() : Napi::String::New(env, buf.data(), k));
  }
  int err = errno;
  closedir(d);
  if (err) throw ErrnoError(env, err, "readdir", dir);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  home_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home_netns < 0) throw ErrnoError(env, errno, "open", "/proc/thread-self/ns/net");
  exports.Set("withNetns", Napi::Function::New(env, WithNetns));
  exports.Set("newNetns", Napi::Function::New(env, NewNetns));
  exports.Set("netnsInode", Napi::Function::New(env, NetnsInode));
  exports.Set("openNetnsPath", Napi::Function::New(env, OpenNetnsPath));
  exports.Set("openNetnsPid", Napi::Function::New(env, OpenNetnsPid));
  exports.Set("strerror", Napi::Function::New(env, StrError));
  exports.Set("tryLock", Napi::Function::New(env, TryLock));
  exports.Set("readSmallFiles", Napi::Function::New(env, ReadSmallFiles));
  exports.Set("openNetlinkSocket", Napi::Function::New(env, OpenNetlinkSocket));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
    RegisterSpawn(env, exports);
  RegisterTransact(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(pipework, Init)
