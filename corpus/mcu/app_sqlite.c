/*
 * SQLite "data logger" firmware for the fota MCU corpus: an in-memory
 * database of sensor samples, filled and queried in a loop.
 * APP_VERSION 1 or 2 (default 1).
 *  v2: new "hourly" report command (index + GROUP BY), user_version pragma,
 *      retention constant 256 -> 384 rows, new version string.
 */
#include <stdint.h>
#include <string.h>

#include "sqlite3.h"

#ifndef APP_VERSION
#define APP_VERSION 1
#endif

#if APP_VERSION >= 2
#define APP_VERSION_STR "sqlog 2.0.0"
#define KEEP_ROWS 384
#else
#define APP_VERSION_STR "sqlog 1.0.0"
#define KEEP_ROWS 256
#endif

#define HEAP_BYTES (160u * 1024u)

extern uint32_t board_millis(void);
extern void board_puts(const char *s);

static uint64_t g_heap[HEAP_BYTES / sizeof(uint64_t)];
static sqlite3 *g_db;
static sqlite3_stmt *g_insert;

static int print_row(void *arg, int n, char **vals, char **cols)
{
    char line[96];
    int i;
    (void)arg;
    for (i = 0; i < n; i++) {
        sqlite3_snprintf(sizeof line, line, "%s%s=%s", i ? " " : "", cols[i], vals[i] ? vals[i] : "NULL");
        board_puts(line);
    }
    board_puts("\n");
    return 0;
}

static int exec(const char *sql)
{
    char *err = 0;
    int rc = sqlite3_exec(g_db, sql, print_row, 0, &err);
    if (rc != SQLITE_OK) {
        board_puts("sql error: ");
        board_puts(err ? err : sqlite3_errstr(rc));
        board_puts("\n");
        sqlite3_free(err);
    }
    return rc;
}

static int cmd_schema(void)
{
    int rc = exec("CREATE TABLE IF NOT EXISTS sample("
                  " id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
                  " sensor TEXT NOT NULL, value REAL);");
#if APP_VERSION >= 2
    if (rc == SQLITE_OK)
        rc = exec("PRAGMA user_version = 2;"
                  "CREATE INDEX IF NOT EXISTS sample_ts ON sample(ts);");
#endif
    if (rc == SQLITE_OK && g_insert == 0)
        rc = sqlite3_prepare_v2(g_db, "INSERT INTO sample(ts, sensor, value) VALUES(?1, ?2, ?3)",
                                -1, &g_insert, 0);
    return rc;
}

static int cmd_log(void)
{
    static const char *const sensors[] = { "temp", "hum", "press" };
    uint32_t now = board_millis();
    int i, rc = SQLITE_OK;
    exec("BEGIN");
    for (i = 0; i < 16 && rc == SQLITE_OK; i++) {
        sqlite3_bind_int64(g_insert, 1, (sqlite3_int64)now * 16 + i);
        sqlite3_bind_text(g_insert, 2, sensors[i % 3], -1, SQLITE_STATIC);
        sqlite3_bind_double(g_insert, 3, 20.0 + (double)((now + (uint32_t)i * 37u) % 1000u) / 100.0);
        rc = sqlite3_step(g_insert) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(g_insert);
    }
    exec(rc == SQLITE_OK ? "COMMIT" : "ROLLBACK");
    return rc;
}

static int cmd_trim(void)
{
    char sql[128];
    sqlite3_snprintf(sizeof sql, sql,
                     "DELETE FROM sample WHERE id <= (SELECT max(id) FROM sample) - %d;", KEEP_ROWS);
    return exec(sql);
}

static int cmd_report(void)
{
    return exec("SELECT sensor, count(*) AS n, printf('%.2f', avg(value)) AS avg,"
                " min(value) AS lo, max(value) AS hi FROM sample GROUP BY sensor ORDER BY sensor;");
}

#if APP_VERSION >= 2
static int cmd_hourly(void)
{
    return exec("SELECT ts / 3600000 AS hour, count(*) AS n, round(avg(value), 1) AS avg"
                " FROM sample WHERE ts > (SELECT max(ts) FROM sample) - 7200000"
                " GROUP BY hour ORDER BY hour DESC LIMIT 4;");
}
#endif

struct command {
    const char *name;
    int (*run)(void);
};

static const struct command g_commands[] = {
    { "schema", cmd_schema },
    { "log", cmd_log },
    { "trim", cmd_trim },
    { "report", cmd_report },
#if APP_VERSION >= 2
    { "hourly", cmd_hourly },
#endif
};

int main(void)
{
    size_t i;
    int rc = sqlite3_config(SQLITE_CONFIG_HEAP, g_heap, (int)sizeof g_heap, 32);
    if (rc == SQLITE_OK)
        rc = sqlite3_initialize();
    if (rc == SQLITE_OK)
        rc = sqlite3_open_v2(":memory:", &g_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0);
    if (rc != SQLITE_OK) {
        board_puts("sqlite init failed\n");
        return 1;
    }
    board_puts(APP_VERSION_STR " sqlite ");
    board_puts(sqlite3_libversion());
    board_puts("\n");
    for (;;) {
        for (i = 0; i < sizeof g_commands / sizeof g_commands[0]; i++) {
            if (g_commands[i].run() != SQLITE_OK) {
                board_puts(g_commands[i].name);
                board_puts(": failed\n");
            }
        }
    }
}
