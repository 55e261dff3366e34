/*
 * zlib "log compressor" firmware for the fota MCU corpus.
 * Compresses a block of synthetic log records with a small deflate window,
 * inflates it back and checks the CRC; a tiny command table drives it.
 * APP_VERSION 1 or 2 (default 1).
 *  v2: new "adler" command, compression level 6 -> 9, new version string.
 */
#include <stdint.h>
#include <string.h>

#include "zlib.h"

#ifndef APP_VERSION
#define APP_VERSION 1
#endif

#if APP_VERSION >= 2
#define APP_VERSION_STR "zlog 2.0.0"
#define LOG_LEVEL_Z 9
#else
#define APP_VERSION_STR "zlog 1.0.0"
#define LOG_LEVEL_Z 6
#endif

#define WINDOW_BITS 10 /* 1 KiB window: fits a small MCU */
#define MEM_LEVEL 4
#define LOG_SIZE 4096

extern uint32_t board_millis(void);
extern void board_puts(const char *s);

static unsigned char g_log[LOG_SIZE];
static unsigned char g_packed[LOG_SIZE + 64];
static unsigned char g_check[LOG_SIZE];
static unsigned long g_packed_len;

static void put_hex(const char *label, unsigned long v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[9];
    int i;
    for (i = 7; i >= 0; i--) {
        buf[i] = digits[v & 0xFu];
        v >>= 4;
    }
    buf[8] = 0;
    board_puts(label);
    board_puts("=0x");
    board_puts(buf);
    board_puts("\n");
}

static void fill_log(uint32_t seed)
{
    static const char *const tags[] = { "temp", "hum", "vbat", "rssi" };
    size_t pos = 0;
    uint32_t x = seed | 1u;
    while (pos + 24 < LOG_SIZE) {
        const char *tag = tags[x & 3u];
        size_t n = strlen(tag);
        memcpy(g_log + pos, tag, n);
        pos += n;
        g_log[pos++] = '=';
        g_log[pos++] = (unsigned char)('0' + (x >> 8) % 10u);
        g_log[pos++] = (unsigned char)('0' + (x >> 16) % 10u);
        g_log[pos++] = '\n';
        x = x * 1103515245u + 12345u;
    }
    memset(g_log + pos, ' ', LOG_SIZE - pos);
}

static int cmd_compress(void)
{
    z_stream s;
    int rc;
    memset(&s, 0, sizeof s);
    rc = deflateInit2(&s, LOG_LEVEL_Z, Z_DEFLATED, WINDOW_BITS, MEM_LEVEL, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK)
        return rc;
    s.next_in = g_log;
    s.avail_in = LOG_SIZE;
    s.next_out = g_packed;
    s.avail_out = sizeof g_packed;
    rc = deflate(&s, Z_FINISH);
    g_packed_len = s.total_out;
    deflateEnd(&s);
    put_hex("packed", g_packed_len);
    return rc == Z_STREAM_END ? Z_OK : Z_BUF_ERROR;
}

static int cmd_selftest(void)
{
    z_stream s;
    int rc;
    memset(&s, 0, sizeof s);
    rc = inflateInit2(&s, WINDOW_BITS);
    if (rc != Z_OK)
        return rc;
    s.next_in = g_packed;
    s.avail_in = (uInt)g_packed_len;
    s.next_out = g_check;
    s.avail_out = sizeof g_check;
    rc = inflate(&s, Z_FINISH);
    inflateEnd(&s);
    if (rc != Z_STREAM_END || memcmp(g_check, g_log, LOG_SIZE) != 0)
        return Z_DATA_ERROR;
    board_puts("selftest ok\n");
    return Z_OK;
}

static int cmd_crc(void)
{
    put_hex("crc32", crc32(crc32(0L, Z_NULL, 0), g_log, LOG_SIZE));
    return Z_OK;
}

#if APP_VERSION >= 2
static int cmd_adler(void)
{
    put_hex("adler32", adler32(adler32(0L, Z_NULL, 0), g_packed, (uInt)g_packed_len));
    return Z_OK;
}
#endif

static int cmd_uncompress(void)
{
    uLongf n = sizeof g_check;
    int rc = uncompress(g_check, &n, g_packed, g_packed_len);
    /* the stream has a 1 KiB window, uncompress() copes with any window */
    put_hex("raw", (unsigned long)n);
    return rc;
}

struct command {
    const char *name;
    int (*run)(void);
};

static const struct command g_commands[] = {
    { "compress", cmd_compress },
    { "selftest", cmd_selftest },
    { "crc", cmd_crc },
#if APP_VERSION >= 2
    { "adler", cmd_adler },
#endif
    { "uncompress", cmd_uncompress },
};

int main(void)
{
    size_t i;
    board_puts(APP_VERSION_STR " zlib ");
    board_puts(zlibVersion());
    board_puts("\n");
    for (;;) {
        fill_log(board_millis());
        for (i = 0; i < sizeof g_commands / sizeof g_commands[0]; i++) {
            int rc = g_commands[i].run();
            if (rc != Z_OK) {
                board_puts(g_commands[i].name);
                put_hex(" failed", (unsigned long)rc);
            }
        }
    }
}
