// spawnIsolated: starts a program inside a given network namespace and/or a
// new private mount namespace with scratch files bind-mounted (or scratch
// overlays mounted) over chosen paths, optionally in a private UTS namespace
// and a new session. DHCP client scripts rewrite /etc/resolv.conf (Debian's
// dhclient-script even renames a temp file onto it, which a file bind mount
// refuses with EBUSY) and may set the hostname in whatever namespaces they
// run in; this keeps them away from the host's. Node's child_process cannot
// run code between fork and exec, hence this file.
//
// openInRoot: opens a path inside another root (a container's
// /proc/<pid>/root) with openat2(RESOLVE_IN_ROOT), so symlinks in the
// container's tree can never lead to the host's files.
//
// Only the child ever calls setns/unshare/mount: the parent's namespaces are
// never touched. The child is watched through a pidfd on a libuv poll handle
// (no thread is held while it runs) and is always reaped.

#include <napi.h>

#include "errors.h"
#include <uv.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <string>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

extern char** environ;

namespace {

// A C string for execve/mount: an embedded NUL would silently cut it short.
std::string CString(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsString()) throw Napi::TypeError::New(env, what + " must be a string");
  std::string s = v.As<Napi::String>();
  if (s.find('\0') != std::string::npos) throw Napi::TypeError::New(env, what + " must not contain NUL bytes");
  return s;
}

int OptionalFd(Napi::Env env, Napi::Object opts, const char* name, int fallback) {
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(name) + " must be a file descriptor number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 0x7fffffff || d != static_cast<int>(d))
    throw Napi::TypeError::New(env, std::string(name) + " must be a non-negative integer fd");
  return static_cast<int>(d);
}

// What the child reports through the error pipe when a step before exec fails.
enum Step : int { kSetns, kUnshare, kMakePrivate, kBindMount, kStdio, kExec, kUnshareUts, kSethostname, kOverlay, kSetsid };
struct ChildFailure {
  int step;
  int err;
  int index;  // which bind mount, overlay or stdio fd
};

// An overlay mounted over target in the child's private mount namespace:
// reads see lower (default: target itself), writes land in upper.
struct Overlay {
  std::string target;
  std::string options;  // "lowerdir=...,upperdir=...,workdir=..."
};

// Everything the child needs, built before fork: after fork in a
// multi-threaded process only async-signal-safe calls are allowed, so the
// child must not allocate.
struct Plan {
  std::string file;
  std::vector<std::string> candidates;  // execvp: the PATH entries to try, in order
  std::vector<std::string> args;        // argv[0..]
  std::vector<char*> argv;
  std::vector<char*> shArgv;            // ENOEXEC fallback: /bin/sh <path> argv[1..]
  std::vector<std::string> envStrings;
  std::vector<char*> envp;
  bool inheritEnv = true;
  int netnsFd = -1;
  bool privateMounts = false;
  std::vector<Overlay> overlays;
  std::vector<std::pair<std::string, std::string>> binds;
  bool privateUts = false;
  bool setHostname = false;
  std::string hostname;
  bool newSession = false;
  bool unref = false;
  int stdioFds[3] = {-1, -1, -1};
};

bool Flag(Napi::Object opts, const char* name) {
  Napi::Value v = opts.Get(name);
  return !v.IsUndefined() && !v.IsNull() && v.ToBoolean().Value();
}

// A path for overlayfs's option string: the kernel splits it at ',' and ':'
// (and treats '\\' as an escape), so such paths are refused, not mangled.
std::string OverlayPath(Napi::Env env, Napi::Value v, const std::string& what) {
  std::string s = CString(env, v, what);
  if (s.empty() || s[0] != '/') throw Napi::TypeError::New(env, what + " must be an absolute path");
  if (s.find_first_of(",:\\") != std::string::npos)
    throw Napi::TypeError::New(env, what + " must not contain ',', ':' or '\\' (overlayfs option syntax)");
  return s;
}

void BuildCandidates(Plan& plan, const char* pathVar) {
  if (plan.file.find('/') != std::string::npos) {
    plan.candidates.push_back(plan.file);
    return;
  }
  // As Node's child_process: options.env.PATH if env is given, else our own
  // PATH; without one, the default search path.
  std::string path = pathVar ? pathVar : "/usr/bin:/bin";
  size_t start = 0;
  while (true) {
    size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    plan.candidates.push_back((dir.empty() ? std::string(".") : dir) + "/" + plan.file);
    if (end == std::string::npos) break;
    start = end + 1;
  }
}

Plan ParseOptions(Napi::Env env, Napi::Object opts) {
  Plan plan;
  plan.file = CString(env, opts.Get("file"), "file");
  if (plan.file.empty()) throw Napi::TypeError::New(env, "file must not be empty");

  plan.args.push_back(plan.file);
  Napi::Value args = opts.Get("args");
  if (!args.IsUndefined()) {
    if (!args.IsArray()) throw Napi::TypeError::New(env, "args must be an array of strings");
    Napi::Array a = args.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) plan.args.push_back(CString(env, a.Get(i), "args[" + std::to_string(i) + "]"));
  }

  const char* pathVar = getenv("PATH");
  std::string envPath;
  Napi::Value envv = opts.Get("env");
  if (!envv.IsUndefined() && !envv.IsNull()) {
    // Passed as "KEY=VALUE" strings; src/native/spawn.ts flattens the record.
    if (!envv.IsArray()) throw Napi::TypeError::New(env, "env must be an array of KEY=VALUE strings");
    Napi::Array a = envv.As<Napi::Array>();
    plan.inheritEnv = false;
    pathVar = nullptr;
    for (uint32_t i = 0; i < a.Length(); i++) {
      std::string kv = CString(env, a.Get(i), "env entry");
      size_t eq = kv.find('=');
      if (eq == 0 || eq == std::string::npos) throw Napi::TypeError::New(env, "env entries must be KEY=VALUE with a non-empty KEY");
      if (kv.compare(0, eq + 1, "PATH=") == 0) {
        envPath = kv.substr(eq + 1);
        pathVar = envPath.c_str();
      }
      plan.envStrings.push_back(std::move(kv));
    }
  }
  BuildCandidates(plan, pathVar);

  plan.netnsFd = OptionalFd(env, opts, "netnsFd", -1);
  plan.privateMounts = Flag(opts, "privateMounts");
  plan.privateUts = Flag(opts, "privateUts");
  plan.newSession = Flag(opts, "newSession");
  plan.unref = Flag(opts, "unref");
  Napi::Value hn = opts.Get("hostname");
  if (!hn.IsUndefined() && !hn.IsNull()) {
    plan.hostname = CString(env, hn, "hostname");
    if (plan.hostname.empty() || plan.hostname.size() > 64)
      throw Napi::TypeError::New(env, "hostname must be 1 to 64 bytes");
    // Setting it outside a private UTS namespace would rename the host.
    if (!plan.privateUts) throw Napi::TypeError::New(env, "hostname requires privateUts: true");
    plan.setHostname = true;
  }

  Napi::Value ov = opts.Get("overlays");
  if (!ov.IsUndefined() && !ov.IsNull()) {
    if (!ov.IsArray()) throw Napi::TypeError::New(env, "overlays must be an array of { target, upper, work, lower? }");
    Napi::Array a = ov.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value item = a.Get(i);
      std::string at = "overlays[" + std::to_string(i) + "]";
      if (!item.IsObject() || item.IsArray()) throw Napi::TypeError::New(env, at + " must be { target, upper, work, lower? }");
      Napi::Object o = item.As<Napi::Object>();
      std::string target = OverlayPath(env, o.Get("target"), at + ".target");
      Napi::Value lv = o.Get("lower");
      std::string lower = lv.IsUndefined() || lv.IsNull() ? target : OverlayPath(env, lv, at + ".lower");
      std::string upper = OverlayPath(env, o.Get("upper"), at + ".upper");
      std::string work = OverlayPath(env, o.Get("work"), at + ".work");
      plan.overlays.push_back({target, "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work});
    }
    if (!plan.overlays.empty() && !plan.privateMounts)
      throw Napi::TypeError::New(env, "overlays requires privateMounts: true");
  }

  Napi::Value bm = opts.Get("bindMounts");
  if (!bm.IsUndefined() && !bm.IsNull()) {
    if (!bm.IsArray()) throw Napi::TypeError::New(env, "bindMounts must be an array of [source, target] pairs");
    Napi::Array a = bm.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value pair = a.Get(i);
      if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2)
        throw Napi::TypeError::New(env, "bindMounts[" + std::to_string(i) + "] must be a [source, target] pair");
      Napi::Array p = pair.As<Napi::Array>();
      plan.binds.emplace_back(CString(env, p.Get(0u), "bind mount source"), CString(env, p.Get(1u), "bind mount target"));
    }
    // Bind mounts in the parent's mount namespace would be exactly the leak
    // this function exists to prevent.
    if (!plan.binds.empty() && !plan.privateMounts)
      throw Napi::TypeError::New(env, "bindMounts requires privateMounts: true");
  }

  plan.stdioFds[1] = OptionalFd(env, opts, "stdoutFd", -1);
  plan.stdioFds[2] = OptionalFd(env, opts, "stderrFd", -1);

  // Pointer arrays last: the strings above no longer move.
  for (auto& s : plan.args) plan.argv.push_back(s.data());
  plan.argv.push_back(nullptr);
  plan.shArgv.push_back(const_cast<char*>("/bin/sh"));
  plan.shArgv.push_back(nullptr);  // the candidate path, filled in by the child
  for (size_t i = 1; i < plan.args.size(); i++) plan.shArgv.push_back(plan.args[i].data());
  plan.shArgv.push_back(nullptr);
  for (auto& s : plan.envStrings) plan.envp.push_back(s.data());
  plan.envp.push_back(nullptr);
  return plan;
}

[[noreturn]] void Fail(int errPipe, int step, int err, int index = 0) {
  ChildFailure f = {step, err, index};
  ssize_t ignored = write(errPipe, &f, sizeof(f));
  (void)ignored;
  _exit(127);
}

// Runs in the forked child: async-signal-safe calls only, no allocation.
[[noreturn]] void RunChild(Plan& plan, int errPipe, char** envp) {
  // Node's signal handlers would write into the parent's libuv signal pipe;
  // the program gets default dispositions and an empty mask, as with spawn().
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);  // glibc-internal RT signals fail: harmless
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  // A new session: no controlling terminal, and signals sent to our process
  // group (Ctrl-C in the shell that ran us) do not reach a client left running.
  if (plan.newSession && setsid() < 0) Fail(errPipe, kSetsid, errno);
  if (plan.netnsFd >= 0 && setns(plan.netnsFd, CLONE_NEWNET) != 0) Fail(errPipe, kSetns, errno);
  if (plan.privateUts) {
    if (unshare(CLONE_NEWUTS) != 0) Fail(errPipe, kUnshareUts, errno);
    if (plan.setHostname && sethostname(plan.hostname.data(), plan.hostname.size()) != 0) Fail(errPipe, kSethostname, errno);
  }
  if (plan.privateMounts) {
    if (unshare(CLONE_NEWNS) != 0) Fail(errPipe, kUnshare, errno);
    // Without this, mounts below would propagate back into shared peers,
    // including the host's mount namespace.
    if (mount("", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) Fail(errPipe, kMakePrivate, errno);
    // Overlays first, so a bind mount can still cover a path inside one.
    for (size_t i = 0; i < plan.overlays.size(); i++)
      if (mount("overlay", plan.overlays[i].target.c_str(), "overlay", 0, plan.overlays[i].options.c_str()) != 0)
        Fail(errPipe, kOverlay, errno, static_cast<int>(i));
    for (size_t i = 0; i < plan.binds.size(); i++)
      if (mount(plan.binds[i].first.c_str(), plan.binds[i].second.c_str(), nullptr, MS_BIND, nullptr) != 0)
        Fail(errPipe, kBindMount, errno, static_cast<int>(i));
  }

  // Duplicate above 2 first, so a source fd that is itself 0..2 is not
  // clobbered by an earlier dup2; dup2 then clears O_CLOEXEC on 0..2.
  int high[3];
  for (int i = 0; i < 3; i++)
    if ((high[i] = fcntl(plan.stdioFds[i], F_DUPFD_CLOEXEC, 3)) < 0) Fail(errPipe, kStdio, errno, i);
  for (int i = 0; i < 3; i++)
    if (dup2(high[i], i) < 0) Fail(errPipe, kStdio, errno, i);

  // execvp semantics (as glibc): skip entries that do not exist, remember
  // EACCES, stop at any other error; ENOEXEC means "run it with /bin/sh".
  int err = ENOENT;
  bool sawEacces = false;
  for (auto& path : plan.candidates) {
    execve(path.c_str(), plan.argv.data(), envp);
    err = errno;
    if (err == ENOEXEC) {
      plan.shArgv[1] = const_cast<char*>(path.c_str());
      execve("/bin/sh", plan.shArgv.data(), envp);
      err = errno;
      break;
    }
    if (err == EACCES) {
      sawEacces = true;
      continue;
    }
    if (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT) continue;
    break;
  }
  if (sawEacces && (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT)) err = EACCES;
  Fail(errPipe, kExec, err);
}

Napi::Error FailureError(Napi::Env env, const Plan& plan, const ChildFailure& f) {
  static const char* const stdioNames[] = {"stdin", "stdout", "stderr"};
  switch (f.step) {
    case kSetns:
      return ErrnoError(env, f.err, "setns", "netns fd " + std::to_string(plan.netnsFd));
    case kUnshare:
      return ErrnoError(env, f.err, "unshare", "CLONE_NEWNS");
    case kUnshareUts:
      return ErrnoError(env, f.err, "unshare", "CLONE_NEWUTS");
    case kSethostname:
      return ErrnoError(env, f.err, "sethostname", plan.hostname);
    case kSetsid:
      return ErrnoError(env, f.err, "setsid");
    case kOverlay: {
      size_t i = static_cast<size_t>(f.index);
      std::string what = i < plan.overlays.size() ? plan.overlays[i].options + " on " + plan.overlays[i].target : "?";
      return ErrnoError(env, f.err, "mount", "overlay " + what);
    }
    case kMakePrivate:
      return ErrnoError(env, f.err, "mount", "making / private");
    case kBindMount: {
      size_t i = static_cast<size_t>(f.index);
      std::string what = i < plan.binds.size() ? plan.binds[i].first + " over " + plan.binds[i].second : "?";
      return ErrnoError(env, f.err, "mount", "bind " + what);
    }
    case kStdio: {
      std::string what = f.index >= 0 && f.index < 3 ? stdioNames[f.index] : "?";
      return ErrnoError(env, f.err, "dup2", what + " fd " + std::to_string(f.index >= 0 && f.index < 3 ? plan.stdioFds[f.index] : -1));
    }
    default:
      return ErrnoError(env, f.err, "execvp", plan.file);
  }
}

void Reap(pid_t pid) {
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// One running child: its pidfd polled on the env's loop until it exits.
struct Watch {
  uv_poll_t poll;
  napi_env env;
  pid_t pid;
  int pidfd;
  napi_deferred deferred;
  napi_async_context asyncContext;
};

void CleanupHook(void* arg);

void OnClosed(uv_handle_t* handle) {
  Watch* w = static_cast<Watch*>(handle->data);
  close(w->pidfd);
  delete w;
}

// Detaches a watch from its env and closes it; OnClosed frees it.
void Finish(Watch* w) {
  napi_async_destroy(w->env, w->asyncContext);
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClosed);
}

// The env is going away (worker terminated, process exiting) while the child
// may still run: reap it if it has exited, else stop watching and leave it
// running (it stays a zombie of this process once it exits).
void CleanupHook(void* arg) {
  Watch* w = static_cast<Watch*>(arg);
  while (waitpid(w->pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
  }
  Finish(w);
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  if (abbrev) return std::string("SIG") + abbrev;
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) return "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
  return "SIG" + std::to_string(sig);
}

void OnChildReadable(uv_poll_t* handle, int status, int /*events*/) {
  Watch* w = static_cast<Watch*>(handle->data);
  int wstatus = 0;
  pid_t r = 0;
  int err = 0;
  if (status == 0) {
    do r = waitpid(w->pid, &wstatus, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) return;  // not exited yet (spurious wakeup): keep polling
    if (r < 0) err = errno;
  } else {
    err = -status;
  }

  Napi::Env env(w->env);
  napi_remove_env_cleanup_hook(env, CleanupHook, w);
  {
    Napi::HandleScope scope(env);
    // Closing the callback scope runs the microtasks, so .then() handlers of
    // `exited` run now rather than at some later, unrelated callback.
    Napi::CallbackScope callbackScope(env, w->asyncContext);
    try {
      if (err == 0) {
        Napi::Object result = Napi::Object::New(env);
        if (WIFEXITED(wstatus)) {
          result.Set("code", Napi::Number::New(env, WEXITSTATUS(wstatus)));
          result.Set("signal", env.Null());
        } else {
          result.Set("code", env.Null());
          result.Set("signal", Napi::String::New(env, SignalName(WTERMSIG(wstatus))));
        }
        napi_resolve_deferred(env, w->deferred, result);
      } else {
        // ECHILD: someone else reaped it (SIGCHLD ignored, or a waitpid(-1)).
        napi_reject_deferred(env, w->deferred, ErrnoError(env, err, "waitpid", "pid " + std::to_string(w->pid)).Value());
      }
    } catch (const Napi::Error&) {
      // Only if building the result itself threw; the promise stays pending.
    }
  }
  Finish(w);
}

// spawnIsolated({ file, args, env?, netnsFd?, privateMounts?, overlays?, bindMounts?,
// privateUts?, hostname?, newSession?, unref?,
// stdoutFd?, stderrFd? }): { pid, exited }. Throws synchronously when any step
// before exec (or exec itself) fails in the child; the child is then reaped.
Napi::Value SpawnIsolated(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Plan plan = ParseOptions(env, info[0].As<Napi::Object>());

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) throw Napi::Error::New(env, "no event loop");

  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) throw ErrnoError(env, errno, "open", "/dev/null");
  for (int& fd : plan.stdioFds)
    if (fd < 0) fd = devnull;
  int errPipe[2];
  if (pipe2(errPipe, O_CLOEXEC) != 0) {
    int err = errno;
    close(devnull);
    throw ErrnoError(env, err, "pipe2");
  }
  char** envp = plan.inheritEnv ? environ : plan.envp.data();

  // Blocked across fork so no handler of ours runs in the child before it
  // has reset them all.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = fork();
  if (pid == 0) {
    close(errPipe[0]);
    RunChild(plan, errPipe[1], envp);
  }
  int forkErr = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close(errPipe[1]);
  close(devnull);
  if (pid < 0) {
    close(errPipe[0]);
    throw ErrnoError(env, forkErr, "fork");
  }

  // Taken before the child can be reaped, so the pid cannot have been reused.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  int pidfdErr = errno;

  // EOF: exec succeeded (the CLOEXEC write end closed). A record: it failed.
  ChildFailure failure;
  ssize_t n;
  do n = read(errPipe[0], &failure, sizeof(failure));
  while (n < 0 && errno == EINTR);
  int readErr = errno;
  close(errPipe[0]);
  if (n != 0) {
    if (n != static_cast<ssize_t>(sizeof(failure))) kill(pid, SIGKILL);
    Reap(pid);
    if (pidfd >= 0) close(pidfd);
    if (n == static_cast<ssize_t>(sizeof(failure))) throw FailureError(env, plan, failure);
    throw ErrnoError(env, n < 0 ? readErr : EIO, "read", "exec status pipe");
  }
  if (pidfd < 0) {
    // We could never tell when it exits: do not leave it running unwatched.
    kill(pid, SIGKILL);
    Reap(pid);
    throw ErrnoError(env, pidfdErr, "pidfd_open", "pid " + std::to_string(pid));
  }

  Watch* w = new Watch();
  w->env = env;
  w->pid = pid;
  w->pidfd = pidfd;
  w->poll.data = w;
  napi_value promise;
  try {
    if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
        napi_async_init(env, Napi::Object::New(env), Napi::String::New(env, "pipework:spawnIsolated"),
                        &w->asyncContext) != napi_ok)
      throw Napi::Error::New(env, "cannot create the exit promise");
  } catch (...) {
    kill(pid, SIGKILL);
    Reap(pid);
    close(pidfd);
    delete w;
    throw;
  }
  int uvErr = uv_poll_init(loop, &w->poll, pidfd);
  if (uvErr == 0) {
    uvErr = uv_poll_start(&w->poll, UV_READABLE, OnChildReadable);
    if (uvErr != 0) {
      kill(pid, SIGKILL);
      Reap(pid);
      Finish(w);  // an initialised handle must be closed, not freed
      throw ErrnoError(env, -uvErr, "uv_poll_start", "pidfd");
    }
  } else {
    kill(pid, SIGKILL);
    Reap(pid);
    napi_async_destroy(env, w->asyncContext);
    close(pidfd);
    delete w;
    throw ErrnoError(env, -uvErr, "uv_poll_init", "pidfd");
  }
  // unref: a client meant to outlive us must not keep our event loop alive;
  // `exited` still settles whenever the loop runs anyway.
  if (plan.unref) uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
  napi_add_env_cleanup_hook(env, CleanupHook, w);

  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, pid));
  result.Set("exited", Napi::Value(env, promise));
  return result;
}

// openInRoot(root, path, flags, mode?): an fd for path resolved as if root
// were "/" (openat2 RESOLVE_IN_ROOT: "..", absolute symlinks and symlinks
// in the middle all stay inside root; no magic links). For writing into a
// container's files through /proc/<pid>/root without following its symlinks
// out to the host. The caller owns (and closes) the fd.
Napi::Value OpenInRoot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) throw Napi::TypeError::New(env, "openInRoot(root, path, flags, mode?)");
  std::string root = CString(env, info[0], "root");
  std::string path = CString(env, info[1], "path");
  if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "flags must be a number");
  int flags = info[2].As<Napi::Number>().Int32Value();
  unsigned mode = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 0644;
  int dirfd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) throw ErrnoError(env, errno, "open", root);
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(static_cast<unsigned>(flags | O_CLOEXEC));
  if (flags & (O_CREAT | O_TMPFILE)) how.mode = mode & 07777;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd;
  do fd = static_cast<int>(syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how)));
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  int err = errno;
  close(dirfd);
  if (fd < 0) throw ErrnoError(env, err, "openat2", path + " in " + root);
  return Napi::Number::New(env, fd);
}

}  // namespace

void RegisterSpawn(Napi::Env env, Napi::Object exports) {
  exports.Set("spawnIsolated", Napi::Function::New(env, SpawnIsolated));
  exports.Set("openInRoot", Napi::Function::New(env, OpenInRoot));
}
