/*
 * cmd.c - line oriented console.
 *
 * Bytes arrive in the UART receive ring buffer; cmd_poll() assembles them
 * into lines, splits each line into arguments and dispatches through the
 * command table at the end of this file.  Every command answers with zero
 * or more text lines followed by "OK" or "ERR <reason>".
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sensord.h"
#include "version.h"

#define TAG "cmd"

typedef int (*cmd_fn)(struct cmd_ctx *c, int argc, char **argv);

struct cmd_def {
    const char *name;
    cmd_fn fn;
    uint8_t min_args;
    uint8_t max_args;
    const char *usage;
    const char *help;
};

/* set by cmd_init(); the table itself is at the end of this file */
static const struct cmd_def *cmd_table;
static size_t cmd_table_len;

static void reply(struct cmd_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reply(struct cmd_ctx *c, const char *fmt, ...)
{
    va_list ap;

    if (c->out == NULL)
        return;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
}

static int cfg_fail(struct cmd_ctx *c, int rc)
{
    reply(c, "ERR %s", cfg_strerror(rc));
    return -1;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/*
 * Split a line in place.  Arguments are separated by blanks; double quotes
 * group words and support \t and \xHH escapes.  '#' starts a comment.
 * Returns argc, -1 for an unterminated quote, -2 for too many arguments.
 */
int cmd_tokenize(char *line, char **argv, int max_args)
{
    char *rd = line;
    char *wr = line;
    int argc = 0;

    for (;;) {
        int quoted = 0;

        while (*rd == ' ' || *rd == '\t')
            rd++;
        if (*rd == '\0' || *rd == '#')
            return argc;
        if (argc == max_args)
            return -2;
        argv[argc++] = wr;
        while (*rd != '\0') {
            char ch = *rd++;

            if (quoted && ch == '\\' && *rd != '\0') {
                ch = *rd++;
                if (ch == 't') {
                    ch = '\t';
                } else if (ch == 'x' && hexval(rd[0]) >= 0 && hexval(rd[1]) >= 0) {
                    ch = (char)(hexval(rd[0]) * 16 + hexval(rd[1]));
                    rd += 2;
                }
            } else if (ch == '"') {
                quoted = !quoted;
                continue;
            } else if (!quoted && (ch == ' ' || ch == '\t')) {
                break;
            }
            *wr++ = ch;
        }
        if (quoted)
            return -1;
        *wr++ = '\0';
    }
}

static int cmd_help(struct cmd_ctx *c, int argc, char **argv)
{
    size_t i;

    (void)argc;
    (void)argv;
    for (i = 0; i < cmd_table_len; i++)
        reply(c, "  %-8s %-24s %s", cmd_table[i].name, cmd_table[i].usage,
              cmd_table[i].help);
    return 0;
}

static int cmd_version(struct cmd_ctx *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    reply(c, "%s", FW_BANNER);
    reply(c, "version word 0x%06lx, config format KVS1", FW_VERSION_WORD);
    return 0;
}

static int cmd_status(struct cmd_ctx *c, int argc, char **argv)
{
    const struct fsm *f = c->fsm;
    uint32_t up = log_uptime_ms();

    (void)argc;
    (void)argv;
    reply(c, "state   %s (prev %s, since %lu ms, retries %u/%u, faults %u)",
          fsm_state_name(f->state), fsm_state_name(f->prev),
          (unsigned long)f->entered_ms, f->retries, f->max_retries, f->faults);
    reply(c, "uptime  %lu.%03lu s, config %u keys", (unsigned long)(up / 1000u),
          (unsigned long)(up % 1000u), cfg_count());
    reply(c, "console %lu lines, %lu errors, %lu rx overruns",
          (unsigned long)c->lines, (unsigned long)c->errors,
          (unsigned long)c->rx->overruns);
    reply(c, "log     %lu errors, %lu warnings",
          (unsigned long)log_count(LOG_ERROR), (unsigned long)log_count(LOG_WARN));
    return 0;
}

static int cmd_get(struct cmd_ctx *c, int argc, char **argv)
{
    const char *v = cfg_get(argv[1]);

    (void)argc;
    if (v == NULL)
        return cfg_fail(c, CFG_ERR_NOT_FOUND);
    reply(c, "%s=%s", argv[1], v);
    return 0;
}

static int cmd_set(struct cmd_ctx *c, int argc, char **argv)
{
    int rc = argc == 3 ? cfg_set(argv[1], argv[2]) : cfg_del(argv[1]);

    return rc == CFG_OK ? 0 : cfg_fail(c, rc);
}

static void print_entry(const char *key, const char *val, void *ctx)
{
    reply(ctx, "  %-15s = %s", key, val);
}

static int cmd_cfg(struct cmd_ctx *c, int argc, char **argv)
{
    int rc = 0;

    (void)argc;
    if (strcmp(argv[1], "list") == 0) {
        cfg_foreach(print_entry, c);
    } else if (strcmp(argv[1], "save") == 0) {
        rc = cfg_serialize(c->flash, sizeof c->flash);
        if (rc >= 0) {
            c->flash_len = rc;
            reply(c, "saved %d bytes, crc32 %08lx", rc,
                  (unsigned long)crc32_calc(c->flash, (size_t)rc));
        }
    } else if (strcmp(argv[1], "load") == 0) {
        rc = cfg_deserialize(c->flash, (size_t)c->flash_len);
        if (rc >= 0)
            reply(c, "loaded %d keys", rc);
    } else if (strcmp(argv[1], "defaults") == 0) {
        cfg_load_defaults();
    } else {
        reply(c, "ERR unknown subcommand '%s'", argv[1]);
        return -1;
    }
    return rc < 0 ? cfg_fail(c, rc) : 0;
}

static int cmd_sample(struct cmd_ctx *c, int argc, char **argv)
{
    struct sensor_reading r;
    unsigned long n = 1;
    unsigned long i;
    long hi = cfg_get_int("temp.alarm_hi", 6000);
    long lo = cfg_get_int("temp.alarm_lo", -1000);
    long period = cfg_get_int("sample.period", 1000);
    char *end = NULL;

    if (argc > 1)
        n = strtoul(argv[1], &end, 10);
    if (argc > 1 && (*end != '\0' || n > 64)) {
        reply(c, "ERR count must be 0..64");
        return -1;
    }
    if (c->fsm->state == ST_IDLE)
        (void)fsm_dispatch(c->fsm, EV_TIMER);
    for (i = 0; i < n; i++) {
        log_tick(period > 0 ? (uint32_t)period : 1000u);
        sensor_sample(&r);
        reply(c, "#%lu adc=%u t=%ld avg=%ld", i, r.raw_adc, (long)r.temp_cdeg,
              (long)r.temp_filt);
        if (r.temp_filt > hi || r.temp_filt < lo)
            LOG_W(TAG, "temperature alarm: %ld", (long)r.temp_filt);
    }
    if (c->fsm->state == ST_SAMPLING)
        (void)fsm_dispatch(c->fsm, EV_SAMPLE_DONE);
    return 0;
}

static int cmd_stats(struct cmd_ctx *c, int argc, char **argv)
{
    struct sensor_stats st;

    if (argc == 2) {
        if (strcmp(argv[1], "reset") != 0) {
            reply(c, "ERR usage: stats [reset]");
            return -1;
        }
        sensor_reset_stats();
        LOG_I(TAG, "sensor statistics cleared");
        return 0;
    }
    sensor_get_stats(&st);
    if (st.samples == 0) {
        reply(c, "no samples");
        return 0;
    }
    reply(c, "samples %lu min %ld max %ld mean %ld",
          (unsigned long)st.samples, (long)st.temp_min, (long)st.temp_max,
          (long)(st.temp_sum / (int64_t)st.samples));
    return 0;
}

static int cmd_crc(struct cmd_ctx *c, int argc, char **argv)
{
    size_t len = strlen(argv[1]);

    (void)argc;
    reply(c, "len=%lu crc16=%04x crc32=%08lx", (unsigned long)len,
          crc16_calc(argv[1], len), (unsigned long)crc32_calc(argv[1], len));
    return 0;
}

static int cmd_event(struct cmd_ctx *c, int argc, char **argv)
{
    int ev = fsm_event_from_name(argv[1]);

    (void)argc;
    if (ev < 0) {
        reply(c, "ERR unknown event '%s'", argv[1]);
        return -1;
    }
    if (fsm_dispatch(c->fsm, (enum dev_event)ev) != 0) {
        reply(c, "ERR event not accepted in state %s", fsm_state_name(c->fsm->state));
        return -1;
    }
    reply(c, "state %s", fsm_state_name(c->fsm->state));
    return 0;
}

static int cmd_log(struct cmd_ctx *c, int argc, char **argv)
{
    int lvl = argc == 2 ? log_level_from_name(argv[1]) : -1;

    if (argc == 1) {
        reply(c, "level %s", log_level_name(log_get_level()));
    } else if (lvl >= 0) {
        log_set_level((enum log_level)lvl);
    } else {
        reply(c, "ERR unknown level '%s'", argv[1]);
        return -1;
    }
    return 0;
}

static int cmd_quit(struct cmd_ctx *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    c->quit = 1;
    return 0;
}

static const struct cmd_def commands[] = {
    { "help",    cmd_help,    0, 0, "",                        "list commands" },
    { "version", cmd_version, 0, 0, "",                        "firmware version" },
    { "status",  cmd_status,  0, 0, "",                        "system status" },
    { "get",     cmd_get,     1, 1, "<key>",                   "read config key" },
    { "set",     cmd_set,     1, 2, "<key> [value]",           "write/delete config key" },
    { "cfg",     cmd_cfg,     1, 1, "list|save|load|defaults", "config store" },
    { "sample",  cmd_sample,  0, 1, "[count]",                 "take sensor samples" },
    { "stats",   cmd_stats,   0, 1, "[reset]",                 "sensor statistics" },
    { "crc",     cmd_crc,     1, 1, "<text>",                  "checksum a string" },
    { "event",   cmd_event,   1, 1, "<event>",                 "inject lifecycle event" },
    { "log",     cmd_log,     0, 1, "[level]",                 "logger control" },
    { "quit",    cmd_quit,    0, 0, "",                        "leave console" },
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

void cmd_init(struct cmd_ctx *c, struct fsm *f, struct ringbuf *rx, FILE *out)
{
    memset(c, 0, sizeof *c);
    c->fsm = f;
    c->rx = rx;
    c->out = out;
    cmd_table = commands;
    cmd_table_len = COMMAND_COUNT;
}

static int dispatch(struct cmd_ctx *c, int argc, char **argv)
{
    size_t i;

    if (argc < 0) {
        reply(c, "ERR %s", argc == -1 ? "unterminated quote" : "too many arguments");
        return -1;
    }
    for (i = 0; i < COMMAND_COUNT; i++) {
        const struct cmd_def *d = &commands[i];

        if (strcmp(argv[0], d->name) != 0)
            continue;
        if (argc - 1 < d->min_args || argc - 1 > d->max_args) {
            reply(c, "ERR usage: %s %s", d->name, d->usage);
            return -1;
        }
        return d->fn(c, argc, argv);
    }
    reply(c, "ERR unknown command '%s' (try help)", argv[0]);
    return -1;
}

int cmd_execute(struct cmd_ctx *c, char *line)
{
    char *argv[CMD_MAX_ARGS];
    int argc = cmd_tokenize(line, argv, CMD_MAX_ARGS);

    if (argc == 0)
        return 0;
    c->lines++;
    if (dispatch(c, argc, argv) != 0) {
        c->errors++;
        return -1;
    }
    reply(c, "OK");
    return 0;
}

int cmd_poll(struct cmd_ctx *c)
{
    uint8_t ch;
    int done = 0;

    while (!c->quit && rb_get(c->rx, &ch) == 0) {
        if (ch == '\r' || ch == '\n') {
            if (c->overflow) {
                reply(c, "ERR line too long");
                c->errors++;
            } else {
                c->line[c->len] = '\0';
                (void)cmd_execute(c, c->line);
                done++;
            }
            c->len = 0;
            c->overflow = 0;
            log_tick(10);
        } else if (ch == 0x08 || ch == 0x7f) {
            if (c->len > 0)
                c->len--;
        } else if (ch >= 0x20 && ch < 0x7f) {
            if (c->len + 1 < sizeof c->line)
                c->line[c->len++] = (char)ch;
            else
                c->overflow = 1;
        }
    }
    return done;
}
