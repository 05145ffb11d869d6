// drover-egress-forward: the sandbox's only way out.
//
// Usage: drover-egress-forward PORT SOCKET -- COMMAND [ARGUMENT...]
//
// Runs inside the sandbox, whose network namespace has nothing but its own loopback. It listens
// on 127.0.0.1:PORT there, leaves a child serving that port, and becomes COMMAND. Each accepted
// connection is relayed, byte for byte, to the unix socket SOCKET, which the worker's egress
// proxy listens on outside the sandbox. Tools find the port through HTTP_PROXY. The relay decides
// nothing: every decision is the proxy's, on the host, where the sandbox cannot reach.
//
// The listener is bound before COMMAND starts, so the first tool call already finds it. The
// relay forks once per connection; a connection's process ends with the connection, and every
// process dies with the sandbox's pid namespace.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(const char *what) {
    fprintf(stderr, "drover-egress-forward: %s: %s\n", what, strerror(errno));
    exit(125);
}

// Copies what `from` has ready into `to`. Returns 0 at end of stream, -1 on an error.
static int pump(int from, int to) {
    char buffer[65536];
    ssize_t got = read(from, buffer, sizeof buffer);
    if (got <= 0) return got == 0 ? 0 : (errno == EINTR || errno == EAGAIN ? 1 : -1);
    for (ssize_t sent = 0; sent < got;) {
        ssize_t n = write(to, buffer + sent, (size_t)(got - sent));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        sent += n;
    }
    return 1;
}

static void relay(int client, const char *path) {
    int upstream = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (upstream < 0) _exit(1);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strncpy(address.sun_path, path, sizeof address.sun_path - 1);
    if (connect(upstream, (struct sockaddr *)&address, sizeof address) != 0) _exit(1);
    struct pollfd fds[2] = {{.fd = client, .events = POLLIN}, {.fd = upstream, .events = POLLIN}};
    int open[2] = {1, 1};
    // Half-closes travel through: a client that shuts down its sending side still gets its answer.
    while (open[0] || open[1]) {
        fds[0].fd = open[0] ? client : -1;
        fds[1].fd = open[1] ? upstream : -1;
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (!open[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int from = i == 0 ? client : upstream, to = i == 0 ? upstream : client;
            int status = pump(from, to);
            if (status < 0) _exit(0);
            if (status == 0) {
                open[i] = 0;
                shutdown(to, SHUT_WR);
            }
        }
    }
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 5 || strcmp(argv[3], "--") != 0) {
        fprintf(stderr, "usage: drover-egress-forward PORT SOCKET -- COMMAND [ARGUMENT...]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *path = argv[2];
    if (port <= 0 || port > 65535 || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "drover-egress-forward: bad port or socket path\n");
        return 2;
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) fail("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0) fail("bind 127.0.0.1");
    if (listen(listener, 128) != 0) fail("listen");

    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        // Forked twice, so the relay is no child of COMMAND's: a shell's `wait` never waits on it.
        if (fork() != 0) _exit(0);
        // The relay keeps none of the shell's descriptors: the worker reads the shell's output
        // until its last writer closes, and a relay holding it would keep every call open.
        if (dup2(listener, 3) < 0) _exit(125);
        int null = open("/dev/null", O_RDWR);
        for (int fd = 0; fd < 3; fd++) dup2(null, fd);
        closefrom(4);
        listener = 3;
        // Finished connections' processes are reaped by the kernel.
        signal(SIGCHLD, SIG_IGN);
        for (;;) {
            int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (client < 0) {
                if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE || errno == ENOBUFS) {
                    if (errno != EINTR && errno != ECONNABORTED) usleep(10000);
                    continue;
                }
                _exit(1);
            }
            setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            pid_t worker = fork();
            if (worker == 0) {
                close(listener);
                relay(client, path);
            }
            // A failed fork (the sandbox's process limit) drops this connection, not the relay.
            close(client);
        }
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    close(listener);
    execvp(argv[4], argv + 4);
    fail("exec");
    return 125;
}
