#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include "drover_spawn.h"

int drover_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

int drover_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int drover_set_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

#include <errno.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>

static int open_beneath_walk(int dirfd, const char *path, int flags) {
    char buffer[4096];
    size_t length = strlen(path);
    if (length >= sizeof buffer) { errno = ENAMETOOLONG; return -1; }
    memcpy(buffer, path, length + 1);
    int current = dirfd;
    char *save = NULL;
    char *part = strtok_r(buffer, "/", &save);
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        if (strcmp(part, "..") == 0) { if (current != dirfd) close(current); errno = EXDEV; return -1; }
        if (strcmp(part, ".") == 0) { part = next; continue; }
        int fd = next ? openat(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                      : openat(current, part, flags | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        if (current != dirfd) close(current);
        if (fd < 0) { errno = saved; return -1; }
        if (!next) return fd;
        current = fd;
        part = next;
    }
    /* The path named the directory itself. */
    return openat(dirfd, ".", flags | O_CLOEXEC);
}

int drover_open_beneath(int dirfd, const char *path, int flags) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC | O_NOFOLLOW);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) return (int)fd;
    if (errno != ENOSYS && errno != EPERM) return -1;
    return open_beneath_walk(dirfd, path, flags);
}

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int drover_socket_state(int fd, int *peer_pid, int *unread_by_peer, int *unread_here) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    *peer_pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 ? credentials.pid : -1;
    if (ioctl(fd, SIOCOUTQ, unread_by_peer) != 0) return -1;
    if (ioctl(fd, SIOCINQ, unread_here) != 0) return -1;
    return 0;
}

int drover_name_current_thread(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = '\0';
    return pthread_setname_np(pthread_self(), truncated);
}
