/*
 * Minimal SQLite OS layer for a bare-metal build (SQLITE_OS_OTHER=1):
 * a VFS that can only host in-memory databases (no files), with randomness
 * and time taken from the board's millisecond tick.
 */
#include <stdint.h>
#include <string.h>

#include "sqlite3.h"

extern uint32_t board_millis(void);

static int mcu_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs; (void)name; (void)flags; (void)out;
    f->pMethods = 0;
    return SQLITE_CANTOPEN;
}

static int mcu_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    (void)vfs; (void)name; (void)sync;
    return SQLITE_OK;
}

static int mcu_access(sqlite3_vfs *vfs, const char *name, int flags, int *res)
{
    (void)vfs; (void)name; (void)flags;
    *res = 0;
    return SQLITE_OK;
}

static int mcu_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    sqlite3_snprintf(n, out, "%s", name);
    return SQLITE_OK;
}

static int mcu_random(sqlite3_vfs *vfs, int n, char *out)
{
    static uint32_t state = 0x2545F491u;
    int i;
    (void)vfs;
    state ^= board_millis();
    for (i = 0; i < n; i++) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        out[i] = (char)(state >> 24);
    }
    return n;
}

static int mcu_sleep(sqlite3_vfs *vfs, int us)
{
    uint32_t until = board_millis() + (uint32_t)(us / 1000);
    (void)vfs;
    while ((int32_t)(board_millis() - until) < 0)
        ;
    return us;
}

/* 2024-01-01T00:00:00Z as a Julian day number in ms, plus uptime */
static int mcu_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
    (void)vfs;
    *t = (sqlite3_int64)212024496000000LL + (sqlite3_int64)board_millis();
    return SQLITE_OK;
}

static int mcu_time(sqlite3_vfs *vfs, double *t)
{
    sqlite3_int64 ms;
    mcu_time64(vfs, &ms);
    *t = (double)ms / 86400000.0;
    return SQLITE_OK;
}

static int mcu_last_error(sqlite3_vfs *vfs, int n, char *buf)
{
    (void)vfs;
    if (n > 0)
        buf[0] = 0;
    return 0;
}

static sqlite3_vfs g_mcu_vfs = {
    2,                    /* iVersion */
    0,                    /* szOsFile */
    64,                   /* mxPathname */
    0,                    /* pNext */
    "mcu",                /* zName */
    0,                    /* pAppData */
    mcu_open,
    mcu_delete,
    mcu_access,
    mcu_fullpath,
    0, 0, 0, 0,           /* no dynamic loading */
    mcu_random,
    mcu_sleep,
    mcu_time,
    mcu_last_error,
    mcu_time64,
    0, 0, 0               /* v3 system-call hooks (unused) */
};

int sqlite3_os_init(void)
{
    return sqlite3_vfs_register(&g_mcu_vfs, 1);
}

int sqlite3_os_end(void)
{
    return SQLITE_OK;
}
