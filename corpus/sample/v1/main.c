/*
 * main.c - sensord entry point.
 *
 * On the board main() brings up the peripherals and then services the UART
 * console and the sample timer forever.  The hosted build reads console
 * input from stdin and adds --selftest (the production line power-on self
 * test) and --demo (a scripted console session).
 */
#include <stdio.h>
#include <string.h>

#include "sensord.h"
#include "version.h"

#define TAG "main"

static uint8_t rx_storage[64];
static struct ringbuf rx;
static struct fsm lifecycle;
static struct cmd_ctx console;

static const char *const demo_script[] = {
    "version",
    "get sample.period",
    "set node.name \"roof \\x41\"",
    "cfg save",
    "set uplink.retry",
    "cfg load",
    "sample 4",
    "crc 123456789",
    "event upload_fail",
    "event upload_ok",
    "status",
    "bogus",
    NULL
};

static void boot(FILE *out, int quiet)
{
    log_init(LOG_INFO, quiet);
    cfg_load_defaults();
    sensor_init((uint32_t)cfg_get_int("node.id", 1) * 2654435761u,
                (unsigned)cfg_get_int("sample.window", 8));
    fsm_init(&lifecycle, (uint8_t)cfg_get_int("uplink.retry", 3));
    rb_init(&rx, rx_storage, sizeof rx_storage);
    cmd_init(&console, &lifecycle, &rx, out);
    LOG_I(TAG, "%s", FW_BANNER);
    (void)fsm_dispatch(&lifecycle, EV_POWER_ON);
    (void)fsm_dispatch(&lifecycle, EV_INIT_OK);
}

/* Push bytes as the UART ISR would, draining the buffer when it fills. */
static void uart_feed(const char *s, size_t len)
{
    size_t done = 0;

    while (done < len && !console.quit) {
        done += rb_write(&rx, (const uint8_t *)s + done, len - done);
        (void)cmd_poll(&console);
    }
}

static void run_script(int echo)
{
    size_t i;

    for (i = 0; demo_script[i] != NULL; i++) {
        if (echo)
            printf("> %s\n", demo_script[i]);
        uart_feed(demo_script[i], strlen(demo_script[i]));
        uart_feed("\r\n", 2);
    }
}

/* ---- power-on self test ------------------------------------------- */

static unsigned st_run, st_failed;

static void check(int ok, const char *what)
{
    st_run++;
    st_failed += ok ? 0u : 1u;
    printf("selftest: %-4s %s\n", ok ? "ok" : "FAIL", what);
}

static int test_ringbuf(void)
{
    uint8_t store[8], out[8], b;
    struct ringbuf rb;
    unsigned i;
    int ok = rb_init(&rb, store, 6) != 0;

    ok &= rb_init(&rb, store, sizeof store) == 0;
    ok &= rb_write(&rb, (const uint8_t *)"0123456789", 10) == 8;
    ok &= rb.overruns == 1 && rb_space(&rb) == 0;
    ok &= rb_read(&rb, out, 5) == 5 && memcmp(out, "01234", 5) == 0;
    for (i = 0; i < 1000; i++)
        ok &= rb_put(&rb, (uint8_t)i) == 0 && rb_get(&rb, &b) == 0;
    ok &= rb_count(&rb) == 3 && rb_discard(&rb, 10) == 3 && rb_count(&rb) == 0;
    return ok;
}

static int test_config(void)
{
    uint8_t blob[CFG_BLOB_MAX];
    int len, ok;

    cfg_load_defaults();
    ok = cfg_count() == 9 && cfg_get_int("uplink.port", 0) == 5683;
    ok &= cfg_set("Bad Key", "x") == CFG_ERR_KEY;
    ok &= cfg_set("x", "0123456789abcdef0123456789abcdef") == CFG_ERR_VALUE;
    ok &= cfg_set("test.key", "hello") == CFG_OK;
    len = cfg_serialize(blob, sizeof blob);
    cfg_clear();
    ok &= len > 10 && cfg_count() == 0;
    ok &= cfg_deserialize(blob, (size_t)len) == 10;
    ok &= cfg_get("test.key") != NULL && strcmp(cfg_get("test.key"), "hello") == 0;
    blob[12] ^= 0x20;
    ok &= cfg_deserialize(blob, (size_t)len) == CFG_ERR_CRC;
    ok &= cfg_del("test.key") == CFG_OK && cfg_del("test.key") == CFG_ERR_NOT_FOUND;
    return ok;
}

static int test_fsm(void)
{
    static const uint8_t seq[] = {
        EV_POWER_ON, EV_INIT_OK, EV_TIMER, EV_SAMPLE_DONE,
        EV_UPLOAD_FAIL, EV_UPLOAD_FAIL, EV_UPLOAD_OK, EV_SLEEP, EV_WAKE
    };
    struct fsm f;
    size_t i;
    int ok = 1;

    fsm_init(&f, 2);
    for (i = 0; i < sizeof seq; i++)
        ok &= fsm_dispatch(&f, (enum dev_event)seq[i]) == 0;
    ok &= f.state == ST_IDLE && f.transitions == sizeof seq;
    ok &= fsm_dispatch(&f, EV_UPLOAD_OK) != 0;
    ok &= fsm_dispatch(&f, EV_TIMER) == 0 && fsm_dispatch(&f, EV_SAMPLE_DONE) == 0;
    for (i = 0; i < 3; i++)
        ok &= fsm_dispatch(&f, EV_UPLOAD_FAIL) == 0;
    ok &= f.state == ST_ERROR && f.faults == 1;
    ok &= fsm_dispatch(&f, EV_RESET) == 0 && f.state == ST_BOOT;
    return ok && fsm_event_from_name("wake") == EV_WAKE;
}

static int test_ntc(void)
{
    unsigned adc;
    int ok = sensor_adc_to_cdeg(2048) == 2500 && sensor_adc_to_cdeg(0) == 15000;

    for (adc = 1; adc < 4096; adc++)
        ok &= sensor_adc_to_cdeg((uint16_t)adc) <= sensor_adc_to_cdeg((uint16_t)(adc - 1));
    return ok;
}

static int test_tokenizer(void)
{
    char line[] = "set  node.name \"a b\\x41\\t\" # comment";
    char bad[] = "set \"open";
    char *argv[CMD_MAX_ARGS];
    int argc = cmd_tokenize(line, argv, CMD_MAX_ARGS);

    return argc == 3 && strcmp(argv[2], "a bA\t") == 0 &&
           cmd_tokenize(bad, argv, CMD_MAX_ARGS) == -1;
}

static int selftest(void)
{
    printf("%s\n", FW_BANNER);
    log_init(LOG_INFO, 1);
    check(crc32_calc("123456789", 9) == 0xcbf43926u, "crc32 check value");
    check(crc16_calc("123456789", 9) == 0x29b1u, "crc16 check value");
    check(test_ringbuf(), "ring buffer");
    check(test_config(), "config store");
    check(test_fsm(), "lifecycle fsm");
    check(test_ntc(), "ntc table");
    check(test_tokenizer(), "tokenizer");
    boot(NULL, 1);
    run_script(0);
    check(console.lines == 12 && console.errors == 1 && rx.overruns == 0 &&
          strcmp(cfg_get("node.name"), "roof A") == 0, "console script");
    printf("selftest: %u/%u passed\n", st_run - st_failed, st_run);
    return st_failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    char buf[128];

    if (argc > 1 && strcmp(argv[1], "--selftest") == 0)
        return selftest();
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", FW_BANNER);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--demo") == 0) {
        boot(stdout, 0);
        run_script(1);
        return console.errors == 1 ? 0 : 1;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: %s [--selftest | --demo | --version]\n", argv[0]);
        return 2;
    }
    boot(stdout, 0);
    while (!console.quit && fgets(buf, sizeof buf, stdin) != NULL)
        uart_feed(buf, strlen(buf));
    return 0;
}
