/*
 * bench/burst.c: starts a burst of CNI plugin calls the way a runtime does
 * (containerd's Go exec: clone+exec per call, all at once, stdin written as
 * each starts), and times each from its spawn to its exit.  bench/cni-daemon.js
 * used to spawn them from Node, whose loop spends a fork and its bookkeeping on
 * each: the first call's time then held the other 29 spawns, for the reference
 * plugin and ours alike.
 *
 * Usage:  burst PLUGIN COMMAND OUTDIR NETNS...   < network config
 *   Environment of each call: CNI_COMMAND=COMMAND, CNI_CONTAINERID=id-NETNS,
 *   CNI_NETNS=/run/netns/NETNS, CNI_IFNAME=eth0, and PATH, CNI_PATH,
 *   PIPEWORK_SOCKET passed on.  Each call's stdout goes to OUTDIR/NETNS.out,
 *   its stderr to OUTDIR/NETNS.err.
 * Output: one line per call, "NETNS MS STATUS" (STATUS: exit code, or 128 +
 *   signal), in the order given; exit 0 once every call has been reaped.
 *
 * Build:  gcc -O2 -o bench/out/burst bench/burst.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* "NAME=value" in a fresh string */
static char *var(const char *name, const char *fmt, const char *arg)
{
    char *s;
    char value[4096];
    snprintf(value, sizeof(value), fmt, arg);
    if (asprintf(&s, "%s=%s", name, value) < 0)
        die("asprintf");
    return s;
}

static char *passed(const char *name)
{
    const char *v = getenv(name);
    return v ? var(name, "%s", v) : NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: burst PLUGIN COMMAND OUTDIR NETNS... < config\n");
        return 2;
    }
    const char *plugin = argv[1], *command = argv[2], *outdir = argv[3];
    char **netns = argv + 4;
    int n = argc - 4;

    /* the config, read whole before any call starts */
    size_t len = 0, cap = 65536;
    char *config = malloc(cap);
    ssize_t r;
    while (config && (r = read(0, config + len, cap - len)) > 0)
        if ((len += r) == cap && !(config = realloc(config, cap *= 2)))
            break;
    if (!config || r < 0)
        die("reading the config");
    if (len > 65536) {
        /* a pipe holds 64 KiB: each write below must not block */
        fprintf(stderr, "burst: config over 64 KiB\n");
        return 2;
    }

    /* every environment and file action made before the first spawn */
    char ***envs = calloc(n, sizeof(*envs));
    posix_spawn_file_actions_t *acts = calloc(n, sizeof(*acts));
    int *stdin_w = calloc(n, sizeof(int)), *child_fds = calloc(3 * n, sizeof(int));
    pid_t *pids = calloc(n, sizeof(pid_t));
    double *t0 = calloc(n, sizeof(double)), *ms = calloc(n, sizeof(double));
    int *status = calloc(n, sizeof(int));
    if (!envs || !acts || !stdin_w || !child_fds || !pids || !t0 || !ms || !status)
        die("calloc");
    for (int i = 0; i < n; i++) {
        char **e = envs[i] = calloc(9, sizeof(char *));
        int k = 0;
        e[k++] = var("CNI_COMMAND", "%s", command);
        e[k++] = var("CNI_CONTAINERID", "id-%s", netns[i]);
        e[k++] = var("CNI_NETNS", "/run/netns/%s", netns[i]);
        e[k++] = var("CNI_IFNAME", "%s", "eth0");
        const char *pass[] = {"PATH", "CNI_PATH", "PIPEWORK_SOCKET"};
        for (int p = 0; p < 3; p++)
            if ((e[k] = passed(pass[p])))
                k++;
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
            die("pipe2");
        stdin_w[i] = pipefd[1];
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.out", outdir, netns[i]);
        int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        snprintf(path, sizeof(path), "%s/%s.err", outdir, netns[i]);
        int err = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0 || err < 0)
            die(path);
        child_fds[3 * i] = pipefd[0];
        child_fds[3 * i + 1] = out;
        child_fds[3 * i + 2] = err;
        posix_spawn_file_actions_init(&acts[i]);
        posix_spawn_file_actions_adddup2(&acts[i], pipefd[0], 0);
        posix_spawn_file_actions_adddup2(&acts[i], out, 1);
        posix_spawn_file_actions_adddup2(&acts[i], err, 2);
    }

    for (int i = 0; i < n; i++) {
        char *args[] = {(char *)plugin, NULL};
        t0[i] = now_ms();
        int e = posix_spawn(&pids[i], plugin, &acts[i], NULL, args, envs[i]);
        if (e) {
            errno = e;
            die(plugin);
        }
        /* the call's input at once, as a runtime writes it; then EOF */
        if (write(stdin_w[i], config, len) != (ssize_t)len)
            die("writing a call's stdin");
        close(stdin_w[i]);
        for (int f = 0; f < 3; f++)
            close(child_fds[3 * i + f]);
    }

    for (int left = n; left > 0; left--) {
        int st;
        pid_t pid = wait(&st);
        double t = now_ms();
        if (pid < 0)
            die("wait");
        for (int i = 0; i < n; i++)
            if (pids[i] == pid) {
                ms[i] = t - t0[i];
                status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
    }
    for (int i = 0; i < n; i++)
        printf("%s %.3f %d\n", netns[i], ms[i], status[i]);
    return 0;
}
