#define _GNU_SOURCE
#include "streams.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int resolve(const char *host, int port, int passive, struct addrinfo **out) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    char service[16];
    if (port < 0 || port > 65535) return -EINVAL;
    snprintf(service, sizeof service, "%d", port);
    const char *node = host;
    if (strcmp(host, "*") == 0 || host[0] == 0) {
        node = NULL;
        hints.ai_family = AF_INET;
    }
    int rc = getaddrinfo(node, service, &hints, out);
    if (rc != 0) return rc == EAI_SYSTEM ? -errno : -EINVAL;
    return 0;
}

static int fail(int fd) {
    int e = errno;
    if (fd >= 0) close(fd);
    return -(e ? e : EINVAL);
}

int proclip_tcp_listen(const char *host, int port, int backlog, int *bound_port) {
    struct addrinfo *ai = NULL;
    int rc = resolve(host, port, 1, &ai);
    if (rc) return rc;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { freeaddrinfo(ai); return -errno; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        freeaddrinfo(ai);
        return fail(fd);
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return fail(fd);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static int unix_address(const char *path, struct sockaddr_un *sun) {
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path) return -ENAMETOOLONG;
    strcpy(sun->sun_path, path);
    return 0;
}

int proclip_unix_listen(const char *path, int backlog) {
    struct sockaddr_un sun;
    int rc = unix_address(path, &sun);
    if (rc) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(fd, backlog) != 0) return fail(fd);
    return fd;
}

int proclip_tcp_connect(const char *host, int port) {
    struct addrinfo *ai = NULL;
    int rc = resolve(host, port, 0, &ai);
    if (rc) return rc;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { freeaddrinfo(ai); return -errno; }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        freeaddrinfo(ai);
        return fail(fd);
    }
    freeaddrinfo(ai);
    return fd;
}

int proclip_unix_connect(const char *path) {
    struct sockaddr_un sun;
    int rc = unix_address(path, &sun);
    if (rc) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0 && errno != EINPROGRESS) return fail(fd);
    return fd;
}

int proclip_connect_result(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    return -err;
}

int proclip_accept(int listen_fd) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int proclip_stream_tune(int fd, int is_tcp, int buffer_bytes) {
    int one = 1;
    if (is_tcp && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) return -errno;
    if (buffer_bytes > 0) {
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes) != 0) return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes) != 0) return -errno;
    }
    return 0;
}
