#ifndef DROVER_SPAWN_H
#define DROVER_SPAWN_H
#include <spawn.h>

/// Adds "close every descriptor from `lowest` up" to a spawn's file actions: glibc's
/// posix_spawn_file_actions_addclosefrom_np, which Swift's Glibc module does not export.
int drover_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowest);

/// pipe2(fds, O_CLOEXEC): both ends are close-on-exec from the moment they exist.
int drover_pipe_cloexec(int fds[2]);

/// Marks a descriptor close-on-exec (for descriptors a library opened without it).
int drover_set_cloexec(int fd);

#endif

#ifndef DROVER_OPEN_BENEATH_H
#define DROVER_OPEN_BENEATH_H
/// Opens `path` relative to `dirfd` without following any symbolic link and without leaving the
/// directory (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
/// RESOLVE_NO_XDEV; on kernels before 5.6, a walk of openat calls with O_NOFOLLOW). For reading
/// what a sandbox wrote: a link it planted anywhere in the path fails with ELOOP, a `..` with EXDEV.
/// Returns a descriptor (close-on-exec) or -1 with errno set.
int drover_open_beneath(int dirfd, const char *path, int flags);
#endif

#ifndef DROVER_SOCKET_STATE_H
#define DROVER_SOCKET_STATE_H
/// For a connected socket: the peer's pid (unix sockets; -1 otherwise), the bytes sent and not
/// yet read by the peer (SIOCOUTQ), and the bytes received and not yet read here (SIOCINQ).
/// Returns 0, or -1 with errno set. ioctl is variadic, which Swift cannot call.
int drover_socket_state(int fd, int *peer_pid, int *unread_by_peer, int *unread_here);
#endif

#ifndef DROVER_THREAD_NAME_H
#define DROVER_THREAD_NAME_H
/// Names the calling thread (at most 15 bytes are kept). pthread_setname_np needs _GNU_SOURCE,
/// which Swift's Glibc module does not define.
int drover_name_current_thread(const char *name);
#endif
