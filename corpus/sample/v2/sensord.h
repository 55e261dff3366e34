/*
 * sensord.h - module interfaces of the SN-200 sensor node firmware.
 */
#ifndef SENSORD_H
#define SENSORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- log.c: levelled logger ---------------------------------------- */

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_LEVEL_COUNT };

void log_init(enum log_level lvl, int muted);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
const char *log_level_name(enum log_level lvl);
int log_level_from_name(const char *name);
void log_tick(uint32_t ms);
uint32_t log_uptime_ms(void);
uint32_t log_count(enum log_level lvl);
void log_write(enum log_level lvl, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_E(tag, ...) log_write(LOG_ERROR, tag, __VA_ARGS__)
#define LOG_W(tag, ...) log_write(LOG_WARN, tag, __VA_ARGS__)
#define LOG_I(tag, ...) log_write(LOG_INFO, tag, __VA_ARGS__)
#define LOG_D(tag, ...) log_write(LOG_DEBUG, tag, __VA_ARGS__)

/* ---- ringbuf.c: SPSC byte ring, size must be a power of two -------- */

struct ringbuf {
    uint8_t *buf;
    uint16_t mask;
    volatile uint16_t head;   /* advanced by the producer (UART ISR) */
    volatile uint16_t tail;   /* advanced by the consumer (main loop) */
    uint32_t overruns;
};

int rb_init(struct ringbuf *rb, uint8_t *storage, size_t size);
size_t rb_count(const struct ringbuf *rb);
size_t rb_space(const struct ringbuf *rb);
int rb_put(struct ringbuf *rb, uint8_t byte);
int rb_get(struct ringbuf *rb, uint8_t *byte);
size_t rb_write(struct ringbuf *rb, const uint8_t *data, size_t len);
size_t rb_read(struct ringbuf *rb, uint8_t *data, size_t len);
size_t rb_discard(struct ringbuf *rb, size_t len);

/* ---- crc.c --------------------------------------------------------- */

uint32_t crc32_update(uint32_t crc, const void *data, size_t len); /* IEEE */
uint32_t crc32_calc(const void *data, size_t len);
uint16_t crc16_update(uint16_t crc, const void *data, size_t len); /* CCITT-FALSE */
uint16_t crc16_calc(const void *data, size_t len);

/* ---- config.c: key/value store, serialised with a CRC-16 ----------- */

#define CFG_MAX_ENTRIES  16
#define CFG_KEY_MAX      15
#define CFG_VAL_MAX      31
#define CFG_BLOB_MAX     (8 + CFG_MAX_ENTRIES * (2 + CFG_KEY_MAX + CFG_VAL_MAX) + 2)

enum cfg_status {
    CFG_OK = 0, CFG_ERR_KEY = -1, CFG_ERR_VALUE = -2, CFG_ERR_FULL = -3,
    CFG_ERR_NOT_FOUND = -4, CFG_ERR_FORMAT = -5, CFG_ERR_CRC = -6, CFG_ERR_SPACE = -7
};

void cfg_clear(void);
void cfg_load_defaults(void);
int cfg_set(const char *key, const char *val);
const char *cfg_get(const char *key);
long cfg_get_int(const char *key, long def);
int cfg_del(const char *key);
unsigned cfg_count(void);
void cfg_foreach(void (*fn)(const char *key, const char *val, void *ctx), void *ctx);
const char *cfg_strerror(int status);
int cfg_serialize(uint8_t *out, size_t cap);
int cfg_deserialize(const uint8_t *in, size_t len);

/* ---- fsm.c: device lifecycle --------------------------------------- */

enum dev_state {
    ST_BOOT, ST_INIT, ST_IDLE, ST_SAMPLING, ST_UPLOADING, ST_SLEEP, ST_ERROR, ST_COUNT
};

enum dev_event {
    EV_POWER_ON, EV_INIT_OK, EV_INIT_FAIL, EV_TIMER, EV_SAMPLE_DONE, EV_UPLOAD_OK,
    EV_UPLOAD_FAIL, EV_SLEEP, EV_WAKE, EV_FAULT, EV_RESET, EV_COUNT
};

struct fsm {
    enum dev_state state;
    enum dev_state prev;
    uint32_t entered_ms;
    uint32_t transitions;
    uint8_t retries;
    uint8_t max_retries;
    uint8_t faults;
};

void fsm_init(struct fsm *f, uint8_t max_retries);
int fsm_dispatch(struct fsm *f, enum dev_event ev);
const char *fsm_state_name(enum dev_state s);
int fsm_event_from_name(const char *name);

/* ---- sensor.c: simulated NTC channel ------------------------------- */

#define SENSOR_WINDOW_MAX 16

struct sensor_reading {
    uint16_t raw_adc;      /* 12-bit NTC divider reading */
    int32_t temp_cdeg;     /* temperature in 1/100 degC */
    int32_t temp_filt;     /* moving average in 1/100 degC */
};

struct sensor_stats {
    uint32_t samples;
    int32_t temp_min;
    int32_t temp_max;
    int64_t temp_sum;
};

void sensor_init(uint32_t seed, unsigned window);
int32_t sensor_adc_to_cdeg(uint16_t adc);
void sensor_sample(struct sensor_reading *out);
void sensor_get_stats(struct sensor_stats *st);
void sensor_reset_stats(void);

/* ---- cmd.c: serial console ----------------------------------------- */

#define CMD_LINE_MAX 96
#define CMD_MAX_ARGS 8

struct cmd_ctx {
    struct fsm *fsm;
    struct ringbuf *rx;
    FILE *out;                     /* NULL silences replies */
    char line[CMD_LINE_MAX];
    unsigned len;
    uint8_t overflow;
    uint8_t quit;
    uint32_t lines;
    uint32_t errors;
    int flash_len;                 /* emulated config flash page */
    uint8_t flash[CFG_BLOB_MAX];
};

void cmd_init(struct cmd_ctx *c, struct fsm *f, struct ringbuf *rx, FILE *out);
int cmd_tokenize(char *line, char **argv, int max_args);
int cmd_execute(struct cmd_ctx *c, char *line);
int cmd_poll(struct cmd_ctx *c);

#endif /* SENSORD_H */
