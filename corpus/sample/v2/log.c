/*
 * log.c - levelled logger.  Lines carry the uptime, a level letter and
 * the module tag: "[   12.340] W/fsm   upload retry 1/3".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sensord.h"

#define LOG_LINE_MAX 112

static enum log_level cur_level = LOG_INFO;
static int log_muted;
static uint32_t uptime_ms;
static uint32_t counts[LOG_LEVEL_COUNT];

static const char level_chars[LOG_LEVEL_COUNT] = { 'E', 'W', 'I', 'D' };

static const char *const level_names[LOG_LEVEL_COUNT] = {
    "error", "warn", "info", "debug"
};

void log_init(enum log_level lvl, int muted)
{
    cur_level = lvl;
    log_muted = muted;
    uptime_ms = 0;
    memset(counts, 0, sizeof counts);
}

void log_set_level(enum log_level lvl)
{
    if ((unsigned)lvl < LOG_LEVEL_COUNT)
        cur_level = lvl;
}

enum log_level log_get_level(void)
{
    return cur_level;
}

const char *log_level_name(enum log_level lvl)
{
    return (unsigned)lvl < LOG_LEVEL_COUNT ? level_names[lvl] : "?";
}

int log_level_from_name(const char *name)
{
    unsigned i;

    for (i = 0; i < LOG_LEVEL_COUNT; i++) {
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

void log_tick(uint32_t ms)
{
    uptime_ms += ms;
}

uint32_t log_uptime_ms(void)
{
    return uptime_ms;
}

uint32_t log_count(enum log_level lvl)
{
    return (unsigned)lvl < LOG_LEVEL_COUNT ? counts[lvl] : 0;
}

void log_write(enum log_level lvl, const char *tag, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;
    int n, m;

    if ((unsigned)lvl >= LOG_LEVEL_COUNT)
        lvl = LOG_ERROR;
    counts[lvl]++;
    if (lvl > cur_level || log_muted)
        return;

    n = snprintf(line, sizeof line, "[%5lu.%03lu] %c/%-5s ",
                 (unsigned long)(uptime_ms / 1000u),
                 (unsigned long)(uptime_ms % 1000u), level_chars[lvl], tag);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    if ((size_t)n + (size_t)m >= sizeof line)
        line[sizeof line - 2] = '~';   /* mark truncated lines */
    puts(line);
}
