/*
 * config.c - key/value store with CRC protected serialisation.
 *
 * Blob layout (little endian):
 *   0  "KVS1"      magic
 *   4  u16         number of entries
 *   6  u16         payload length in bytes
 *   8  entries     { u8 klen, key[klen], u8 vlen, val[vlen] } ...
 *   n  u16         CRC-16/CCITT-FALSE over bytes 0..n-1
 */
#include <stdlib.h>
#include <string.h>

#include "sensord.h"

#define TAG "cfg"

struct cfg_entry {
    char key[CFG_KEY_MAX + 1];
    char val[CFG_VAL_MAX + 1];
    uint8_t used;
};

struct cfg_default {
    const char *key;
    const char *val;
};

static struct cfg_entry store[CFG_MAX_ENTRIES];

static const struct cfg_default defaults[] = {
    { "node.id",       "42" },
    { "node.name",     "sn200-field" },
    { "sample.period", "1000" },
    { "sample.window", "8" },
    { "uplink.host",   "gw.local" },
    { "uplink.port",   "5683" },
    { "uplink.retry",  "3" },
    { "temp.alarm_hi", "6000" },
    { "temp.alarm_lo", "-1000" },
};

static const char *const status_text[] = {
    "ok", "bad key", "bad value", "store full", "not found",
    "bad format", "crc mismatch", "no space"
};

static int key_valid(const char *key)
{
    size_t i;
    size_t len = strlen(key);

    if (len == 0 || len > CFG_KEY_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
            return 0;
    }
    return key[0] != '.' && key[len - 1] != '.';
}

static struct cfg_entry *find(const char *key)
{
    unsigned i;

    for (i = 0; i < CFG_MAX_ENTRIES; i++) {
        if (store[i].used && strcmp(store[i].key, key) == 0)
            return &store[i];
    }
    return NULL;
}

void cfg_clear(void)
{
    memset(store, 0, sizeof store);
}

void cfg_load_defaults(void)
{
    size_t i;

    cfg_clear();
    for (i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        (void)cfg_set(defaults[i].key, defaults[i].val);
    LOG_D(TAG, "loaded %u defaults", (unsigned)(sizeof defaults / sizeof defaults[0]));
}

int cfg_set(const char *key, const char *val)
{
    struct cfg_entry *e;
    size_t vlen;
    unsigned i;

    if (!key_valid(key))
        return CFG_ERR_KEY;
    vlen = strlen(val);
    if (vlen > CFG_VAL_MAX)
        return CFG_ERR_VALUE;

    e = find(key);
    for (i = 0; e == NULL && i < CFG_MAX_ENTRIES; i++) {
        if (!store[i].used) {
            e = &store[i];
            memcpy(e->key, key, strlen(key) + 1);
            e->used = 1;
        }
    }
    if (e == NULL) {
        LOG_W(TAG, "store full, cannot add '%s'", key);
        return CFG_ERR_FULL;
    }
    memcpy(e->val, val, vlen + 1);
    return CFG_OK;
}

const char *cfg_get(const char *key)
{
    const struct cfg_entry *e = find(key);

    return e ? e->val : NULL;
}

long cfg_get_int(const char *key, long def)
{
    const char *s = cfg_get(key);
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return def;
    v = strtol(s, &end, 0);
    if (*end != '\0')
        return def;
    return v;
}

int cfg_del(const char *key)
{
    struct cfg_entry *e = find(key);

    if (e == NULL)
        return CFG_ERR_NOT_FOUND;
    memset(e, 0, sizeof *e);
    return CFG_OK;
}

unsigned cfg_count(void)
{
    unsigned i;
    unsigned n = 0;

    for (i = 0; i < CFG_MAX_ENTRIES; i++)
        n += store[i].used ? 1u : 0u;
    return n;
}

void cfg_foreach(void (*fn)(const char *key, const char *val, void *ctx), void *ctx)
{
    unsigned i;

    for (i = 0; i < CFG_MAX_ENTRIES; i++) {
        if (store[i].used)
            fn(store[i].key, store[i].val, ctx);
    }
}

const char *cfg_strerror(int status)
{
    int idx = -status;

    if (idx < 0 || (size_t)idx >= sizeof status_text / sizeof status_text[0])
        return "unknown";
    return status_text[idx];
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xffu);
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

int cfg_serialize(uint8_t *out, size_t cap)
{
    size_t pos = 8;
    unsigned i;
    unsigned n = 0;

    if (cap < 10)
        return CFG_ERR_SPACE;
    memcpy(out, "KVS1", 4);
    for (i = 0; i < CFG_MAX_ENTRIES; i++) {
        const struct cfg_entry *e = &store[i];
        size_t kl, vl;

        if (!e->used)
            continue;
        kl = strlen(e->key);
        vl = strlen(e->val);
        if (pos + 2 + kl + vl + 2 > cap)
            return CFG_ERR_SPACE;
        out[pos++] = (uint8_t)kl;
        memcpy(&out[pos], e->key, kl);
        pos += kl;
        out[pos++] = (uint8_t)vl;
        memcpy(&out[pos], e->val, vl);
        pos += vl;
        n++;
    }
    put_u16(&out[4], (uint16_t)n);
    put_u16(&out[6], (uint16_t)(pos - 8));
    put_u16(&out[pos], crc16_calc(out, pos));
    return (int)(pos + 2);
}

int cfg_deserialize(const uint8_t *in, size_t len)
{
    struct cfg_entry tmp[CFG_MAX_ENTRIES];
    size_t payload, pos, end;
    unsigned count, i;

    if (len < 10 || memcmp(in, "KVS1", 4) != 0)
        return CFG_ERR_FORMAT;
    count = get_u16(&in[4]);
    payload = get_u16(&in[6]);
    if (count > CFG_MAX_ENTRIES || 8 + payload + 2 > len)
        return CFG_ERR_FORMAT;
    end = 8 + payload;
    if (crc16_calc(in, end) != get_u16(&in[end])) {
        LOG_W(TAG, "blob crc mismatch");
        return CFG_ERR_CRC;
    }

    memset(tmp, 0, sizeof tmp);
    pos = 8;
    for (i = 0; i < count; i++) {
        size_t kl, vl;

        if (pos >= end)
            return CFG_ERR_FORMAT;
        kl = in[pos++];
        if (kl == 0 || kl > CFG_KEY_MAX || pos + kl >= end)
            return CFG_ERR_FORMAT;
        memcpy(tmp[i].key, &in[pos], kl);
        pos += kl;
        vl = in[pos++];
        if (vl > CFG_VAL_MAX || pos + vl > end)
            return CFG_ERR_FORMAT;
        memcpy(tmp[i].val, &in[pos], vl);
        pos += vl;
        if (!key_valid(tmp[i].key))
            return CFG_ERR_KEY;
        tmp[i].used = 1;
    }
    if (pos != end)
        return CFG_ERR_FORMAT;

    memcpy(store, tmp, sizeof store);
    LOG_D(TAG, "restored %u entries", count);
    return (int)count;
}
