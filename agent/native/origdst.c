// origdst: the netfilter original destination of a REDIRECTed TCP socket, for Node (N-API, ABI-stable).
// Node has no getsockopt. getOriginalDst(fd) -> { address, port, family } or throws with errno text.
// IPv4-mapped IPv6 sockets (a dual-stack '::' listener accepting IPv4) need SOL_IP, not SOL_IPV6: like mitmproxy,
// we choose by the socket's own local address rather than guessing, since the wrong level just fails with ENOENT.
#define NAPI_VERSION 8
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netfilter_ipv4.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static napi_value fail(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, err == ENOENT ? "ENOENT" : "EORIGDST", msg);
  return NULL;
}

static napi_value result(napi_env env, const char *addr, unsigned port, int family) {
  napi_value obj, a, p, f;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, addr, NAPI_AUTO_LENGTH, &a);
  napi_create_uint32(env, port, &p);
  napi_create_uint32(env, (uint32_t)family, &f);
  napi_set_named_property(env, obj, "address", a);
  napi_set_named_property(env, obj, "port", p);
  napi_set_named_property(env, obj, "family", f);
  return obj;
}

static napi_value get_original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "getOriginalDst(fd): fd must be a non-negative integer");
    return NULL;
  }
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return fail(env, "getsockname", errno);
  int v4 = local.ss_family == AF_INET ||
           (local.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr));
  char text[INET6_ADDRSTRLEN];
  if (v4) {
    struct sockaddr_in dst;
    socklen_t dlen = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen) != 0) return fail(env, "getsockopt(SOL_IP, SO_ORIGINAL_DST)", errno);
    inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text);
    return result(env, text, ntohs(dst.sin_port), 4);
  }
  struct sockaddr_in6 dst6;
  socklen_t dlen6 = sizeof dst6;
  memset(&dst6, 0, sizeof dst6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst6, &dlen6) != 0)
    return fail(env, "getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)", errno);
  inet_ntop(AF_INET6, &dst6.sin6_addr, text, sizeof text);
  return result(env, text, ntohs(dst6.sin6_port), 6);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "getOriginalDst", NAPI_AUTO_LENGTH, get_original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "getOriginalDst", fn);
  return exports;
}
