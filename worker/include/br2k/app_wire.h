/* br2k/app_wire.h - the wire of the BR2K application protocol, version 1
 * (schemas/app-protocol.md): the message types and the big-endian
 * integers of the frames, for the engine (worker/proto.c), the bridge
 * (br2k-app-serve) and any C application that speaks the protocol itself.
 * A frame: 4-byte big-endian length (type byte + payload), type, payload;
 * a reply's type is its request's | BR2K_WIRE_REPLY. Header only. */
#ifndef BR2K_APP_WIRE_H
#define BR2K_APP_WIRE_H

#include <stdint.h>

#define BR2K_WIRE_VERSION 1

enum br2k_wire_type {
    BR2K_WIRE_OPEN = 0x01,
    BR2K_WIRE_APPLY = 0x02,
    BR2K_WIRE_SYNC = 0x03,
    BR2K_WIRE_DIGEST = 0x04,
    BR2K_WIRE_SNAPSHOT = 0x05,
    BR2K_WIRE_RESTORE = 0x06,
    BR2K_WIRE_CLOSE = 0x07,
    BR2K_WIRE_EXTERNAL = 0x08,  /* only to an application whose Open said "external" */
    BR2K_WIRE_REPUBLISH = 0x09, /* only to one whose Open said "republish" too */
    BR2K_WIRE_CHUNK = 0x10,
    BR2K_WIRE_END = 0x11,
    BR2K_WIRE_ERROR = 0x7f,
    BR2K_WIRE_REPLY = 0x80
};

/* The op kinds of an External reply: the same as br2k_ext_kind (br2k/app.h). */
enum br2k_wire_ext_kind {
    BR2K_WIRE_EXT_SET = 1,
    BR2K_WIRE_EXT_DEL = 2,
    BR2K_WIRE_EXT_HSET = 3,
    BR2K_WIRE_EXT_HDEL = 4,
    BR2K_WIRE_EXT_INCRBY = 5
};

static inline void br2k_wire_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t br2k_wire_get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void br2k_wire_put64(uint8_t *p, uint64_t v) {
    br2k_wire_put32(p, (uint32_t)(v >> 32));
    br2k_wire_put32(p + 4, (uint32_t)v);
}

static inline uint64_t br2k_wire_get64(const uint8_t *p) {
    return (uint64_t)br2k_wire_get32(p) << 32 | br2k_wire_get32(p + 4);
}

#endif
