#ifndef PROCLIP_STREAMS_H
#define PROCLIP_STREAMS_H

/* Socket set-up for the ring's direct links (plain TCP or Unix stream sockets), where the
   sockaddr handling is plainer in C. Every function returns a descriptor or 0 on success, and
   -errno (or -EINVAL for an unusable address) on failure. Descriptors are non-blocking and
   close-on-exec; reading and writing is left to the caller. */

/* Listens on host:port (port 0: any free port; host "*": every IPv4 interface); the bound
   port goes to *bound_port. */
int proclip_tcp_listen(const char *host, int port, int backlog, int *bound_port);

/* Listens on the Unix socket `path`, removing a file left there first. */
int proclip_unix_listen(const char *path, int backlog);

/* Starts connecting to host:port or to `path`; the connection may still be in progress
   (wait for POLLOUT, then ask proclip_connect_result). */
int proclip_tcp_connect(const char *host, int port);
int proclip_unix_connect(const char *path);

/* Outcome of a non-blocking connect once the socket is writable: 0 connected, or -errno. */
int proclip_connect_result(int fd);

/* Accepts one pending connection (non-blocking, close-on-exec), or -EAGAIN. */
int proclip_accept(int listen_fd);

/* Sets TCP_NODELAY (TCP sockets only) and, when positive, the kernel buffer sizes. */
int proclip_stream_tune(int fd, int is_tcp, int buffer_bytes);

#endif
