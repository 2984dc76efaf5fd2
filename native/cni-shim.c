/*
 * pipework-cni-shim: the CNI plugin binary a runtime execs once per call.
 * Starting Node costs tens of milliseconds; this forwards the call to a
 * running `pipework daemon` instead: the CNI_* environment and the network
 * configuration (stdin) as one HTTP request over the daemon's unix socket,
 * its answer (stdout, stderr, exit status) written back as the plugin's own.
 *
 * When no daemon listens (socket missing, or nobody accepting on it), it
 * execs the Node plugin (bin/pipework-cni.js) with the same environment and
 * the untouched stdin: it decides before reading stdin, so nothing is lost.
 *
 * Environment (besides CNI_*):
 *   PIPEWORK_SOCKET        the daemon's socket (default /run/pipework/pipework.sock)
 *   PIPEWORK_SHIM_TIMEOUT  seconds for connect + the whole exchange (default 120)
 *   PIPEWORK_CNI_PLUGIN    the Node plugin to exec without a daemon (default:
 *                          bin/pipework-cni.js of the package this binary is in)
 *
 * Every failure is a CNI error result on stdout (exit status 1), with the
 * configuration's cniVersion when stdin was read and names one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/pipework/pipework.sock"
#define DEFAULT_TIMEOUT_MS 120000
/* The daemon refuses request bodies over 1 MiB; stdin is refused before that. */
#define MAX_BODY (1024 * 1024)
#define MAX_RESPONSE (4 * 1024 * 1024)
#define LATEST_VERSION "1.1.0"

/* CNI error codes used here (spec, "Error codes"). */
#define CNI_IO_FAILURE 5
#define CNI_INVALID_CONFIG 7
#define CNI_TRY_AGAIN 11
#define CNI_INTERNAL 999

static const char *const CNI_VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};

/* A growable byte buffer; allocation failure ends the process with a CNI error. */
struct buf {
  char *p;
  size_t len, cap;
};

static char cni_version[32] = LATEST_VERSION;

static void fail(int code, const char *msg, const char *details) __attribute__((noreturn));

static void reserve(struct buf *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) fail(CNI_INTERNAL, "pipework-cni-shim: out of memory", "");
  b->p = p;
  b->cap = cap;
}

static void put(struct buf *b, const char *s, size_t n) {
  reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/*
 * Bytes as the contents of a JSON string. Invalid UTF-8 becomes U+FFFD
 * exactly as Node's decoder does it (one per maximal invalid subpart, the
 * WHATWG algorithm), so the daemon sees the text the Node plugin would.
 */
static void put_json_string(struct buf *out, const unsigned char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        char e[2] = {'\\', (char)c};
        put(out, e, 2);
      } else if (c < 0x20 || c == 0x7f) {
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        put(out, e, 6);
      } else {
        put(out, (const char *)&c, 1);
      }
      i++;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      puts_(out, "\xef\xbf\xbd");
      i++;
      continue;
    }
    size_t j = 1;
    while (j <= need && i + j < n) {
      unsigned char d = s[i + j];
      if (d < lo || d > hi) break;
      lo = 0x80;
      hi = 0xbf;
      j++;
    }
    if (j == need + 1) put(out, (const char *)s + i, need + 1);
    else puts_(out, "\xef\xbf\xbd");
    i += j;
  }
}

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static void fail(int code, const char *msg, const char *details) {
  struct buf b = {0};
  puts_(&b, "{\"cniVersion\":\"");
  put_json_string(&b, (const unsigned char *)cni_version, strlen(cni_version));
  char num[32];
  snprintf(num, sizeof num, "\",\"code\":%d,\"msg\":\"", code);
  puts_(&b, num);
  put_json_string(&b, (const unsigned char *)msg, strlen(msg));
  puts_(&b, "\",\"details\":\"");
  put_json_string(&b, (const unsigned char *)details, strlen(details));
  puts_(&b, "\"}\n");
  write_all(1, b.p, b.len);
  exit(1);
}

static void failf(int code, const char *details, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
static void failf(int code, const char *details, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fail(code, msg, details);
}

/* ---- a small JSON reader: enough for the daemon's answer and cniVersion ---- */

struct json {
  const char *p, *end;
};

static void ws(struct json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex4(struct json *j, unsigned *v) {
  if (j->end - j->p < 4) return -1;
  *v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(j->p[k]);
    if (h < 0) return -1;
    *v = *v * 16 + (unsigned)h;
  }
  j->p += 4;
  return 0;
}

static void put_utf8(struct buf *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) { u[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); n = 2; }
  else if (cp < 0x10000) { u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63)); n = 3; }
  else { u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63)); u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63)); n = 4; }
  put(b, u, n);
}

/* A JSON string at j->p, decoded into out (NULL: skipped). 0 on success. */
static int json_string(struct json *j, struct buf *out) {
  if (j->p >= j->end || *j->p != '"') return -1;
  j->p++;
  while (j->p < j->end) {
    char c = *j->p++;
    if (c == '"') return 0;
    if ((unsigned char)c < 0x20) return -1;
    if (c != '\\') {
      if (out) put(out, &c, 1);
      continue;
    }
    if (j->p >= j->end) return -1;
    char e = *j->p++;
    const char *simple = strchr("\"\\/bfnrt", e);
    if (simple && e) {
      static const char map[] = "\"\\/\b\f\n\r\t";
      if (out) put(out, &map[simple - "\"\\/bfnrt"], 1);
      continue;
    }
    if (e != 'u') return -1;
    unsigned cp;
    if (read_hex4(j, &cp)) return -1;
    if (cp >= 0xd800 && cp <= 0xdbff && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
      struct json save = *j;
      unsigned lo;
      j->p += 2;
      if (read_hex4(j, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      else *j = save;
    }
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; /* a lone surrogate, as Node writes it out */
    if (out) put_utf8(out, cp);
  }
  return -1;
}

static int json_skip(struct json *j, int depth);

static int json_skip_container(struct json *j, char close, int depth) {
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == close) { j->p++; return 0; }
  for (;;) {
    ws(j);
    if (close == '}') {
      if (json_string(j, NULL)) return -1;
      ws(j);
      if (j->p >= j->end || *j->p++ != ':') return -1;
    }
    if (json_skip(j, depth + 1)) return -1;
    ws(j);
    if (j->p >= j->end) return -1;
    char c = *j->p++;
    if (c == close) return 0;
    if (c != ',') return -1;
  }
}

/* Any JSON value, skipped. */
static int json_skip(struct json *j, int depth) {
  if (depth > 64) return -1;
  ws(j);
  if (j->p >= j->end) return -1;
  char c = *j->p;
  if (c == '"') return json_string(j, NULL);
  if (c == '{') return json_skip_container(j, '}', depth);
  if (c == '[') return json_skip_container(j, ']', depth);
  const char *start = j->p;
  while (j->p < j->end && strchr("-+.0123456789eEtruefalsn", *j->p)) j->p++;
  return j->p > start ? 0 : -1;
}

/*
 * Walks a top-level JSON object, calling field(key, json) with j->p at each
 * value; field consumes the value (or returns 1 to have it skipped).
 */
static int json_object(struct json *j, int (*field)(const char *key, struct json *j, void *ctx), void *ctx) {
  ws(j);
  if (j->p >= j->end || *j->p != '{') return -1;
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == '}') { j->p++; return 0; }
  for (;;) {
    struct buf key = {0};
    ws(j);
    if (json_string(j, &key)) { free(key.p); return -1; }
    ws(j);
    if (j->p >= j->end || *j->p++ != ':') { free(key.p); return -1; }
    ws(j);
    int r = field(key.p ? key.p : "", j, ctx);
    free(key.p);
    if (r < 0 || (r > 0 && json_skip(j, 1))) return -1;
    ws(j);
    if (j->p >= j->end) return -1;
    char c = *j->p++;
    if (c == '}') { ws(j); return j->p == j->end ? 0 : -1; }
    if (c != ',') return -1;
  }
}

/* ---- the configuration's cniVersion, for our own error results ---- */

static int version_field(const char *key, struct json *j, void *ctx) {
  (void)ctx;
  if (strcmp(key, "cniVersion") || j->p >= j->end || *j->p != '"') return 1;
  struct buf v = {0};
  if (json_string(j, &v)) { free(v.p); return -1; }
  if (v.p && v.len < sizeof cni_version) memcpy(cni_version, v.p, v.len + 1);
  free(v.p);
  return 0;
}

/* A top-level "cniVersion" string met before the text ends or stops being JSON (stdin cut at the size limit keeps it). */
static void learn_version(const char *stdin_data, size_t n) {
  struct json j = {stdin_data, stdin_data + n};
  json_object(&j, version_field, NULL);
}

/* ---- time ---- */

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static long long deadline;

static int remaining_ms(void) {
  long long r = deadline - now_ms();
  return r < 0 ? 0 : r > INT_MAX ? INT_MAX : (int)r;
}

/* Waits for events on fd until the deadline; a CNI error when it passes. */
static void wait_fd(int fd, short events, const char *doing) {
  for (;;) {
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, remaining_ms());
    if (r > 0) return;
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) failf(CNI_TRY_AGAIN, "raise PIPEWORK_SHIM_TIMEOUT (seconds) if calls legitimately take longer",
                      "pipework daemon did not answer in time (%s)", doing);
    failf(CNI_INTERNAL, "", "poll: %s", strerror(errno));
  }
}

/* ---- the fallback: the Node plugin ---- */

static int is_file(const char *path) { return access(path, X_OK) == 0; }

/* bin/pipework-cni.js of the package this binary belongs to: up from the binary's directory. */
static int find_node_plugin(char *out, size_t size) {
  const char *env = getenv("PIPEWORK_CNI_PLUGIN");
  if (env && *env) {
    snprintf(out, size, "%s", env);
    return 0;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = 0;
    for (int up = 0; up < 5; up++) {
      char *slash = strrchr(self, '/');
      if (!slash || slash == self) break;
      *slash = 0;
      if ((size_t)snprintf(out, size, "%s/bin/pipework-cni.js", self) < size && is_file(out)) return 0;
    }
  }
#ifdef PIPEWORK_PACKAGE_DIR
  if ((size_t)snprintf(out, size, "%s/bin/pipework-cni.js", PIPEWORK_PACKAGE_DIR) < size && is_file(out)) return 0;
#endif
  return -1;
}

static void exec_node_plugin(const char *why) __attribute__((noreturn));
static void exec_node_plugin(const char *why) {
  char plugin[PATH_MAX];
  if (find_node_plugin(plugin, sizeof plugin))
    failf(CNI_TRY_AGAIN, "start `pipework daemon`, or set PIPEWORK_CNI_PLUGIN to bin/pipework-cni.js",
          "no pipework daemon (%s) and the Node plugin bin/pipework-cni.js was not found next to this binary", why);
  char *argv[] = {plugin, NULL};
  execv(plugin, argv);
  failf(CNI_INTERNAL, plugin, "no pipework daemon (%s), and the Node plugin cannot be started: %s", why, strerror(errno));
}

/* ---- the exchange ---- */

/* A connected socket to the daemon, or -1 (after the fallback exec, which does not return). */
static int connect_daemon(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path)
    failf(CNI_INVALID_CONFIG, path, "PIPEWORK_SOCKET is longer than a unix socket path can be (%zu bytes)", sizeof a.sun_path - 1);
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) failf(CNI_INTERNAL, "", "socket: %s", strerror(errno));
  for (;;) {
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
    if (errno == EINTR) continue;
    if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTDIR) {
      char why[PATH_MAX + 64];
      snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
      close(fd);
      exec_node_plugin(why);
    }
    /* The listen queue is full: the daemon is busy, not gone. */
    if (errno == EAGAIN) {
      if (!remaining_ms()) failf(CNI_TRY_AGAIN, path, "pipework daemon did not accept the connection in time");
      struct timespec t = {0, 2000000};
      nanosleep(&t, NULL);
      continue;
    }
    failf(CNI_INTERNAL, path, "cannot connect to the pipework daemon: %s", strerror(errno));
  }
}

/* The whole of stdin, refused past the request limit. */
static void read_stdin(struct buf *in) {
  if (isatty(0)) return; /* VERSION typed at a terminal: no config */
  for (;;) {
    reserve(in, 65536);
    ssize_t n = read(0, in->p + in->len, 65536);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { wait_fd(0, POLLIN, "reading stdin"); continue; }
      failf(CNI_IO_FAILURE, strerror(errno), "error reading the network config from stdin");
    }
    in->len += (size_t)n;
    if (in->len > MAX_BODY) {
      learn_version(in->p, MAX_BODY);
      failf(CNI_INVALID_CONFIG, "", "the network config on stdin is larger than %d bytes", MAX_BODY);
    }
  }
  if (in->p) in->p[in->len] = 0;
  learn_version(in->p ? in->p : "", in->len);
}

static struct buf request(const struct buf *in) {
  struct buf body = {0};
  puts_(&body, "{\"env\":{");
  int first = 1;
  for (size_t i = 0; i < sizeof CNI_VARS / sizeof *CNI_VARS; i++) {
    const char *v = getenv(CNI_VARS[i]);
    if (!v) continue;
    if (!first) puts_(&body, ",");
    first = 0;
    puts_(&body, "\"");
    puts_(&body, CNI_VARS[i]);
    puts_(&body, "\":\"");
    put_json_string(&body, (const unsigned char *)v, strlen(v));
    puts_(&body, "\"");
  }
  puts_(&body, "},\"stdin\":\"");
  put_json_string(&body, (const unsigned char *)(in->p ? in->p : ""), in->len);
  puts_(&body, "\"}");
  if (body.len > MAX_BODY)
    failf(CNI_INVALID_CONFIG, "", "the request to the pipework daemon is larger than %d bytes (network config and CNI_* variables)", MAX_BODY);
  struct buf req = {0};
  char head[256];
  snprintf(head, sizeof head,
           "POST /v1/cni HTTP/1.1\r\nHost: pipework\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
           body.len);
  puts_(&req, head);
  put(&req, body.p, body.len);
  free(body.p);
  return req;
}

static void send_all(int fd, const struct buf *req) {
  size_t off = 0;
  while (off < req->len) {
    ssize_t w = send(fd, req->p + off, req->len - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { wait_fd(fd, POLLOUT, "sending the request"); continue; }
      failf(CNI_TRY_AGAIN, "the call may or may not have been carried out", "pipework daemon went away while it was sent the call: %s", strerror(errno));
    }
    off += (size_t)w;
  }
}

/* The raw response: headers and body, read to the end (Connection: close) or until complete. */
static void receive(int fd, struct buf *resp, size_t (*complete)(const struct buf *)) {
  for (;;) {
    reserve(resp, 65536);
    ssize_t n = recv(fd, resp->p + resp->len, 65536, 0);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { wait_fd(fd, POLLIN, "waiting for the answer"); continue; }
      if (errno == ECONNRESET) return;
      failf(CNI_INTERNAL, "", "reading the pipework daemon's answer: %s", strerror(errno));
    }
    resp->len += (size_t)n;
    resp->p[resp->len] = 0;
    if (resp->len > MAX_RESPONSE) failf(CNI_INTERNAL, "", "pipework daemon's answer is larger than %d bytes", MAX_RESPONSE);
    if (complete(resp)) return;
  }
}

/* Case-insensitive search of a header's value in the head [p, end); NULL when absent. */
static const char *header(const char *p, const char *end, const char *name) {
  size_t n = strlen(name);
  for (const char *line = p; line < end;) {
    const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
    if (!eol) eol = end;
    if ((size_t)(eol - line) > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
      const char *v = line + n + 1;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      return v;
    }
    line = eol + 2;
  }
  return NULL;
}

/* A complete response with Content-Length: its total length; 0 while more is needed (or without one). */
static size_t complete_by_length(const struct buf *r) {
  const char *head_end = memmem(r->p, r->len, "\r\n\r\n", 4);
  if (!head_end) return 0;
  const char *cl = header(r->p, head_end, "Content-Length");
  if (!cl) return 0;
  size_t total = (size_t)(head_end + 4 - r->p) + strtoull(cl, NULL, 10);
  return r->len >= total ? total : 0;
}

/* A chunked body decoded in place; -1 when it is malformed or cut short. */
static int dechunk(char *p, size_t n, size_t *out_len) {
  size_t in = 0, out = 0;
  for (;;) {
    char *end;
    const char *nl = memmem(p + in, n - in, "\r\n", 2);
    if (!nl) return -1;
    unsigned long long size = strtoull(p + in, &end, 16);
    if (end == p + in) return -1;
    in = (size_t)(nl - p) + 2;
    if (size == 0) break;
    if (size > n - in || n - in - size < 2) return -1;
    memmove(p + out, p + in, size);
    out += size;
    in += size + 2;
  }
  *out_len = out;
  return 0;
}

struct answer {
  long exit_code;
  int have_exit, have_stdout;
  struct buf out, err;
};

static int answer_field(const char *key, struct json *j, void *ctx) {
  struct answer *a = ctx;
  if (strcmp(key, "exitCode") == 0) {
    char *end;
    a->exit_code = strtol(j->p, &end, 10);
    if (end == j->p || a->exit_code < 0 || a->exit_code > 255) return -1;
    j->p = end;
    a->have_exit = 1;
    return 0;
  }
  if (strcmp(key, "stdout") == 0) {
    a->have_stdout = 1;
    puts_(&a->out, "");
    return json_string(j, &a->out);
  }
  if (strcmp(key, "stderr") == 0) {
    puts_(&a->err, "");
    return json_string(j, &a->err);
  }
  return 1;
}

static int timeout_ms(void) {
  const char *t = getenv("PIPEWORK_SHIM_TIMEOUT");
  if (!t || !*t) return DEFAULT_TIMEOUT_MS;
  char *end;
  double s = strtod(t, &end);
  if (*end || !(s > 0) || s > 86400)
    failf(CNI_INVALID_CONFIG, t, "PIPEWORK_SHIM_TIMEOUT must be a number of seconds between 0 and 86400");
  return (int)(s * 1000);
}

int main(void) {
  deadline = now_ms() + timeout_ms();
  const char *path = getenv("PIPEWORK_SOCKET");
  if (!path || !*path) path = DEFAULT_SOCKET;

  int fd = connect_daemon(path);

  struct buf in = {0};
  read_stdin(&in);
  struct buf req = request(&in);
  send_all(fd, &req);

  struct buf resp = {0};
  receive(fd, &resp, complete_by_length);
  close(fd);
  if (resp.len == 0)
    fail(CNI_TRY_AGAIN, "pipework daemon closed the connection without answering", "the call may or may not have been carried out");

  const char *head_end = resp.p ? memmem(resp.p, resp.len, "\r\n\r\n", 4) : NULL;
  int status = 0;
  if (!head_end || sscanf(resp.p, "HTTP/1.%*d %d", &status) != 1) {
    fail(CNI_TRY_AGAIN, "pipework daemon's answer was cut short or is not HTTP", "the call may or may not have been carried out");
  }
  char *body = (char *)head_end + 4;
  size_t body_len = resp.len - (size_t)(body - resp.p);
  const char *cl = header(resp.p, head_end, "Content-Length");
  const char *te = header(resp.p, head_end, "Transfer-Encoding");
  if (te && strncasecmp(te, "chunked", 7) == 0) {
    if (dechunk(body, body_len, &body_len))
      fail(CNI_TRY_AGAIN, "pipework daemon's answer was cut short", "the call may or may not have been carried out");
  } else if (cl) {
    size_t want = strtoull(cl, NULL, 10);
    if (body_len < want) fail(CNI_TRY_AGAIN, "pipework daemon's answer was cut short", "the call may or may not have been carried out");
    body_len = want;
  }
  body[body_len] = 0;

  if (status != 200) {
    char details[512];
    snprintf(details, sizeof details, "%.*s", (int)(body_len < 400 ? body_len : 400), body);
    failf(CNI_INTERNAL, details, "pipework daemon could not run the call (HTTP %d)", status);
  }

  struct answer a = {0};
  struct json j = {body, body + body_len};
  if (json_object(&j, answer_field, &a) || !a.have_exit || !a.have_stdout)
    fail(CNI_INTERNAL, "pipework daemon's answer is not {exitCode, stdout, stderr}", "");
  if (a.err.len) write_all(2, a.err.p, a.err.len);
  if (a.out.len) write_all(1, a.out.p, a.out.len);
  return (int)a.exit_code;
}
