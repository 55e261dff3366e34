/*
 * fota-agent from C: a simulated NOR flash behind the FotaFlash callbacks,
 * a package read from a file, and the single-cut campaign (R1 through the
 * C ABI, R13).
 *
 * The flash: uniform erase blocks, a program unit that may be written once
 * between erases (AND into the cells when erased to 0xFF, OR when erased
 * to 0x00), erase counters, a write window (the layout's writable regions:
 * anything outside is refused and counted), and a cut counter: from op N
 * on (programs and erases, counted from 0), power is lost and every
 * program and erase returns FOTA_ERR_POWER_LOST. Op N itself ends as one
 * of four variants: not done, done, torn program (cells half programmed,
 * some words unreadable as ECC errors), torn erase (half erased or random).
 *
 * The campaign: one clean run counts the ops; then for every op N and
 * every variant that fits it, a fresh device runs the update until the
 * cut, power comes back, and a second fota_agent_apply resumes it: the
 * target must then hold the new image bit for bit.
 *
 * Built with -DFOTA_HARNESS_RUST_SIM (and linked with the library built
 * with the `sim` feature), the device is instead the Rust simulator of
 * the agent's own power-cut tests, through fota_sim.h: the same campaign
 * then runs on the same flash model as the Rust tests, through the C ABI.
 *
 * Build (see agent/tests/c_harness.rs, which does all of this):
 *   cargo rustc -p fota-agent --release --features ffi,panic-handler \
 *       --crate-type staticlib        (with CARGO_PROFILE_RELEASE_PANIC=abort)
 *   gcc -std=c99 -Wall -Wextra -Werror -I agent/include \
 *       agent/examples/c/harness.c libfota_agent.a -o harness
 * or, on the Rust simulator:
 *   cargo rustc -p fota-agent --release --features ffi,sim --crate-type staticlib
 *   gcc -std=c99 -Wall -Wextra -Werror -DFOTA_HARNESS_RUST_SIM -I agent/include \
 *       agent/examples/c/harness.c libfota_agent.a -lpthread -ldl -lm -o harness
 * Run:
 *   harness ab|in-place OLD NEW PACKAGE KEY ERASE WRITE READ ERASED [SCRATCH]
 * KEY is the 32-byte raw Ed25519 public key; ERASED is 255 or 0; SCRATCH
 * is the in-place scratch area in erase blocks. The device class is
 * "test-board". Exit status 0 when every run ended bit-exact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota_agent.h"
#ifdef FOTA_HARNESS_RUST_SIM
#include "fota_sim.h"
#endif

/* C99 compile-time check, as in the header: the agent allocated here is
 * the size the library was built with (also checked at run time). */
typedef char harness_agent_size_check[(sizeof(FotaAgent) == FOTA_AGENT_SIZE) ? 1 : -1];

enum { NOT_DONE, DONE, TORN_PROGRAM, TORN_ERASE, VARIANTS };
static const char *const VARIANT_NAMES[VARIANTS] = {"not-done", "done", "torn-program",
                                                    "torn-erase"};

#ifndef FOTA_HARNESS_RUST_SIM
/* The C flash model. */

/* xorshift64*, seeded: every run is reproducible. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

typedef struct {
    uint8_t *data;
    uint8_t *written;  /* per program unit: programmed since its erase */
    uint8_t *ecc_bad;  /* per program unit: reads fail (a torn word) */
    uint32_t *erases;  /* per block */
    uint64_t capacity;
    uint64_t erase_size;
    uint32_t write_size;
    uint32_t read_size;
    uint8_t erased;
    uint64_t window[3][2]; /* writable [start, end) ranges */
    int windows;
    /* The cut counter. */
    uint64_t ops;
    int64_t cut_at; /* -1: no cut */
    int variant;
    uint64_t seed;
    int dead;
    /* What went wrong, for the checks. */
    uint64_t double_writes;
    uint64_t outside_window;
    uint64_t misaligned;
    /* Clean run: 1 when op k was an erase. */
    uint8_t *op_is_erase;
    uint64_t op_log_len;
} SimFlash;

static int in_window(const SimFlash *f, uint64_t from, uint64_t to) {
    int i;
    for (i = 0; i < f->windows; i++) {
        if (f->window[i][0] <= from && to <= f->window[i][1]) {
            return 1;
        }
    }
    return 0;
}

static void do_program(SimFlash *f, uint64_t addr, const uint8_t *src, size_t len) {
    size_t i;
    for (i = 0; i < len; i++) {
        if (f->erased == 0xff) {
            f->data[addr + i] &= src[i];
        } else {
            f->data[addr + i] |= src[i];
        }
    }
    for (i = 0; i < len / f->write_size; i++) {
        uint64_t unit = addr / f->write_size + i;
        if (f->written[unit]) {
            f->double_writes++;
        }
        f->written[unit] = 1;
    }
}

static void do_erase(SimFlash *f, uint64_t from, uint64_t to) {
    uint64_t b;
    memset(f->data + from, f->erased, (size_t)(to - from));
    memset(f->written + from / f->write_size, 0, (size_t)((to - from) / f->write_size));
    memset(f->ecc_bad + from / f->write_size, 0, (size_t)((to - from) / f->write_size));
    for (b = from / f->erase_size; b < to / f->erase_size; b++) {
        f->erases[b]++;
    }
}

/* Counts an op; 1 when power is (now) lost. Op `cut_at` gets its variant. */
static int tick(SimFlash *f, int is_erase, uint64_t addr, const uint8_t *src, uint64_t len) {
    uint64_t n = f->ops++;
    if (f->op_is_erase != NULL && n < f->op_log_len) {
        f->op_is_erase[n] = (uint8_t)is_erase;
    }
    if (f->cut_at < 0 || n != (uint64_t)f->cut_at) {
        return 0;
    }
    f->dead = 1;
    if (f->variant == DONE) {
        if (is_erase) {
            do_erase(f, addr, addr + len);
        } else {
            do_program(f, addr, src, (size_t)len);
        }
    } else if (f->variant == TORN_PROGRAM && !is_erase) {
        uint64_t s = f->seed;
        int ecc = (int)(rng_next(&s) & 1);
        uint64_t i;
        for (i = 0; i < len; i++) {
            uint8_t r = (uint8_t)rng_next(&s);
            if (f->erased == 0xff) {
                f->data[addr + i] &= (uint8_t)(src[i] | r);
            } else {
                f->data[addr + i] |= (uint8_t)(src[i] & r);
            }
        }
        for (i = 0; i < len / f->write_size; i++) {
            uint64_t unit = addr / f->write_size + i;
            f->written[unit] = 1;
            if (ecc && (rng_next(&s) & 1)) {
                f->ecc_bad[unit] = 1;
            }
        }
    } else if (f->variant == TORN_ERASE && is_erase) {
        uint64_t s = f->seed;
        if (rng_next(&s) & 1) {
            memset(f->data + addr, f->erased, (size_t)(len / 2));
        } else {
            uint64_t i;
            for (i = 0; i < len; i++) {
                f->data[addr + i] = (uint8_t)rng_next(&s);
            }
        }
        memset(f->written + addr / f->write_size, 0, (size_t)(len / f->write_size));
        memset(f->ecc_bad + addr / f->write_size, 0, (size_t)(len / f->write_size));
    }
    return 1;
}

static int32_t flash_read(void *ctx, uint64_t addr, uint8_t *buf, size_t len) {
    SimFlash *f = (SimFlash *)ctx;
    uint64_t u;
    if (addr > f->capacity || len > f->capacity - addr) {
        return FOTA_ERR_FLASH;
    }
    if (addr % f->read_size != 0 || len % f->read_size != 0) {
        f->misaligned++;
        return FOTA_ERR_FLASH;
    }
    for (u = addr / f->write_size; len > 0 && u <= (addr + len - 1) / f->write_size; u++) {
        if (f->ecc_bad[u]) {
            return FOTA_ERR_FLASH;
        }
    }
    memcpy(buf, f->data + addr, len);
    return FOTA_OK;
}

static int32_t flash_write(void *ctx, uint64_t addr, const uint8_t *data, size_t len) {
    SimFlash *f = (SimFlash *)ctx;
    if (f->dead) {
        return FOTA_ERR_POWER_LOST;
    }
    if (addr > f->capacity || len > f->capacity - addr) {
        return FOTA_ERR_FLASH;
    }
    if (addr % f->write_size != 0 || len % f->write_size != 0) {
        f->misaligned++;
        return FOTA_ERR_FLASH;
    }
    if (!in_window(f, addr, addr + len)) {
        f->outside_window++;
        return FOTA_ERR_FLASH;
    }
    if (tick(f, 0, addr, data, len)) {
        return FOTA_ERR_POWER_LOST;
    }
    do_program(f, addr, data, len);
    return FOTA_OK;
}

static int32_t flash_erase(void *ctx, uint64_t from, uint64_t to) {
    SimFlash *f = (SimFlash *)ctx;
    if (f->dead) {
        return FOTA_ERR_POWER_LOST;
    }
    if (from > to || to > f->capacity) {
        return FOTA_ERR_FLASH;
    }
    if (from % f->erase_size != 0 || to % f->erase_size != 0) {
        f->misaligned++;
        return FOTA_ERR_FLASH;
    }
    if (!in_window(f, from, to)) {
        f->outside_window++;
        return FOTA_ERR_FLASH;
    }
    if (tick(f, 1, from, NULL, to - from)) {
        return FOTA_ERR_POWER_LOST;
    }
    do_erase(f, from, to);
    return FOTA_OK;
}

static int32_t flash_block_at(void *ctx, uint64_t addr, uint64_t *start, uint64_t *len) {
    const SimFlash *f = (const SimFlash *)ctx;
    if (addr >= f->capacity) {
        return FOTA_ERR_FLASH;
    }
    *start = addr - addr % f->erase_size;
    *len = f->erase_size;
    return FOTA_OK;
}

#endif /* !FOTA_HARNESS_RUST_SIM */

typedef struct {
    const uint8_t *bytes;
    size_t len;
} Bytes;

static int32_t package_read(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
    const Bytes *p = (const Bytes *)ctx;
    if (offset > p->len || len > p->len - offset) {
        return FOTA_ERR_PACKAGE_READ;
    }
    memcpy(buf, p->bytes + offset, len);
    return FOTA_OK;
}

static int load(const char *path, Bytes *out) {
    FILE *file = fopen(path, "rb");
    long n;
    uint8_t *buf;
    if (file == NULL || fseek(file, 0, SEEK_END) != 0 || (n = ftell(file)) < 0 ||
        fseek(file, 0, SEEK_SET) != 0) {
        fprintf(stderr, "harness: cannot read %s\n", path);
        if (file != NULL) {
            fclose(file);
        }
        return 0;
    }
    buf = (uint8_t *)malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, file) != (size_t)n) {
        fprintf(stderr, "harness: cannot read %s\n", path);
        free(buf);
        fclose(file);
        return 0;
    }
    fclose(file);
    out->bytes = buf;
    out->len = (size_t)n;
    return 1;
}

/* The device: a geometry, what is loaded, where the new image goes. */
typedef struct {
    uint64_t erase_size;
    uint32_t write_size;
    uint32_t read_size;
    uint8_t erased;
    uint64_t capacity;
    uint64_t source_at;
    uint64_t target_at;
    uint64_t window[3][2];
    int windows;
    Bytes old_image;
    Bytes new_image;
} Device;

#ifndef FOTA_HARNESS_RUST_SIM
#define DEVICE_NAME "C flash model"

/* The device behind the campaign, C flash model: the functions the
 * campaign uses, here and for the Rust simulator below. */
typedef SimFlash Dev;

static int dev_new(Dev *f, const Device *d) {
    uint64_t units = d->capacity / d->write_size;
    memset(f, 0, sizeof *f);
    f->data = (uint8_t *)malloc((size_t)d->capacity);
    f->written = (uint8_t *)calloc((size_t)units, 1);
    f->ecc_bad = (uint8_t *)calloc((size_t)units, 1);
    f->erases = (uint32_t *)calloc((size_t)(d->capacity / d->erase_size), sizeof(uint32_t));
    if (f->data == NULL || f->written == NULL || f->ecc_bad == NULL || f->erases == NULL) {
        return 0;
    }
    memset(f->data, d->erased, (size_t)d->capacity);
    memcpy(f->data + d->source_at, d->old_image.bytes, d->old_image.len);
    f->capacity = d->capacity;
    f->erase_size = d->erase_size;
    f->write_size = d->write_size;
    f->read_size = d->read_size;
    f->erased = d->erased;
    memcpy(f->window, d->window, sizeof f->window);
    f->windows = d->windows;
    f->cut_at = -1;
    return 1;
}

static void dev_free(Dev *f) {
    free(f->op_is_erase);
    free(f->data);
    free(f->written);
    free(f->ecc_bad);
    free(f->erases);
}

static FotaFlash dev_flash(Dev *f) {
    FotaFlash flash;
    flash.ctx = f;
    flash.read = flash_read;
    flash.write = flash_write;
    flash.erase = flash_erase;
    flash.block_at = flash_block_at;
    flash.capacity = f->capacity;
    flash.read_size = f->read_size;
    flash.write_size = f->write_size;
    flash.erased_value = f->erased;
    return flash;
}

/* Records from now on which ops are erases (the clean run). */
static int dev_record_ops(Dev *f) {
    f->op_log_len = 1 << 20;
    f->op_is_erase = (uint8_t *)calloc((size_t)f->op_log_len, 1);
    return f->op_is_erase != NULL;
}

static int dev_op_is_erase(const Dev *f, uint64_t k) {
    return k < f->op_log_len && f->op_is_erase[k];
}

static void dev_cut_at(Dev *f, uint64_t k, int variant, uint64_t seed) {
    f->cut_at = (int64_t)k;
    f->variant = variant;
    f->seed = seed;
}

static void dev_power_on(Dev *f) {
    f->dead = 0;
    f->cut_at = -1;
}

static uint64_t dev_ops(const Dev *f) {
    return f->ops;
}

static int dev_is_new_image(const Dev *f, const Device *d) {
    return memcmp(f->data + d->target_at, d->new_image.bytes, d->new_image.len) == 0;
}

/* Write-once violations, writes outside the layout, misaligned accesses. */
static void dev_faults(const Dev *f, uint64_t faults[3]) {
    faults[0] = f->double_writes;
    faults[1] = f->outside_window;
    faults[2] = f->misaligned;
}

static void dev_erases(const Dev *f, uint64_t *total, uint64_t *max) {
    uint64_t b;
    *total = 0;
    *max = 0;
    for (b = 0; b < f->capacity / f->erase_size; b++) {
        *total += f->erases[b];
        *max = f->erases[b] > *max ? f->erases[b] : *max;
    }
}

#else
#define DEVICE_NAME "Rust simulator"

/* The device behind the campaign, the Rust simulator (fota_sim.h). */
typedef struct {
    FotaSim *sim;
} Dev;

static int dev_new(Dev *f, const Device *d) {
    uint64_t i, count = d->capacity / d->erase_size;
    uint64_t *blocks = (uint64_t *)malloc((size_t)count * sizeof(uint64_t));
    int w, ok = 1;
    if (blocks == NULL) {
        return 0;
    }
    for (i = 0; i < count; i++) {
        blocks[i] = d->erase_size;
    }
    f->sim = fota_sim_new(blocks, (size_t)count, d->write_size, d->read_size, d->erased);
    free(blocks);
    if (f->sim == NULL) {
        return 0;
    }
    for (w = 0; w < d->windows; w++) {
        ok &= fota_sim_allow_writes(f->sim, d->window[w][0], d->window[w][1]) == FOTA_OK;
    }
    ok &= fota_sim_load(f->sim, d->source_at, d->old_image.bytes, d->old_image.len) == FOTA_OK;
    return ok;
}

static void dev_free(Dev *f) {
    fota_sim_free(f->sim);
}

static FotaFlash dev_flash(Dev *f) {
    return fota_sim_flash(f->sim);
}

static int dev_record_ops(Dev *f) {
    return fota_sim_record_ops(f->sim) == FOTA_OK;
}

static int dev_op_is_erase(const Dev *f, uint64_t k) {
    return fota_sim_trace_op(f->sim, k) == FOTA_SIM_OP_ERASE;
}

static void dev_cut_at(Dev *f, uint64_t k, int variant, uint64_t seed) {
    /* The harness's variants are numbered as FOTA_SIM_CUT_*. */
    (void)fota_sim_cut_at(f->sim, k, (uint32_t)variant, seed);
}

static void dev_power_on(Dev *f) {
    (void)fota_sim_power_on(f->sim);
}

static FotaSimStats dev_stats(const Dev *f) {
    FotaSimStats stats;
    memset(&stats, 0, sizeof stats);
    (void)fota_sim_stats(f->sim, &stats);
    return stats;
}

static uint64_t dev_ops(const Dev *f) {
    return dev_stats(f).ops;
}

static int dev_is_new_image(const Dev *f, const Device *d) {
    uint8_t *target = (uint8_t *)malloc(d->new_image.len + 1);
    int same = target != NULL &&
               fota_sim_contents(f->sim, d->target_at, target, d->new_image.len) == FOTA_OK &&
               memcmp(target, d->new_image.bytes, d->new_image.len) == 0;
    free(target);
    return same;
}

/* Write-once violations, writes outside the layout, misaligned accesses
 * (the Rust simulator refuses those with an error, failing the run). */
static void dev_faults(const Dev *f, uint64_t faults[3]) {
    FotaSimStats stats = dev_stats(f);
    faults[0] = stats.double_writes;
    faults[1] = stats.writes_outside_window;
    faults[2] = 0;
}

static void dev_erases(const Dev *f, uint64_t *total, uint64_t *max) {
    FotaSimStats stats = dev_stats(f);
    *total = stats.erases;
    *max = stats.max_block_erases;
}

#endif /* FOTA_HARNESS_RUST_SIM */

static uint8_t work[4096];
static uint8_t bitmap_written[256];
static uint8_t bitmap_overwritten[256];
static uint32_t slots[64];

static int32_t run(const FotaAgent *agent, Dev *f, Bytes *package, FotaReport *report) {
    FotaFlash flash = dev_flash(f);
    FotaPackage pkg;
    pkg.ctx = package;
    pkg.len = package->len;
    pkg.read = package_read;
    return fota_agent_apply(agent, &flash, &pkg, work,
                            fota_agent_work_len(flash.write_size, flash.read_size),
                            bitmap_written, bitmap_overwritten, sizeof bitmap_written, slots,
                            sizeof slots / sizeof slots[0], report);
}

static uint64_t round_up(uint64_t v, uint64_t unit) {
    return (v + unit - 1) / unit * unit;
}

/* The ABI's argument checks, seen from C. */
static int argument_checks(const FotaConfig *config) {
    static FotaAgent fresh;
    FotaConfig bad = *config;
    FotaReport report;
    int ok = 1;
    ok &= fota_agent_state_size() == sizeof(FotaAgent);
    ok &= fota_agent_work_len(0, 1) == 0 && fota_agent_work_len(4, 1) >= 3 * 256;
    ok &= fota_agent_init(NULL, config) == FOTA_ERR_ARGUMENT;
    ok &= fota_agent_init(&fresh, NULL) == FOTA_ERR_ARGUMENT;
    bad.key_count = 0;
    ok &= fota_agent_init(&fresh, &bad) == FOTA_ERR_CONFIG;
    bad = *config;
    bad.mode = 7;
    ok &= fota_agent_init(&fresh, &bad) == FOTA_ERR_CONFIG;
    /* Refused by init: the agent is unusable until a good init. */
    ok &= fota_agent_apply(&fresh, NULL, NULL, NULL, 0, NULL, NULL, 0, NULL, 0, &report) ==
          FOTA_ERR_ARGUMENT;
    if (!ok) {
        fprintf(stderr, "harness: an argument check failed\n");
    }
    return ok;
}

int main(int argc, char **argv) {
    static FotaAgent agent;
    FotaConfig config;
    Device d;
    Bytes package, key;
    Dev f;
    FotaReport report;
    int32_t rc;
    int in_place, v;
    uint64_t k, clean_ops, clean_erases = 0, max_erases = 0, slot, faults[3];
    uint64_t scratch_blocks = 0, cuts[VARIANTS] = {0, 0, 0, 0}, failures = 0, resumed = 0;

    if (argc < 10) {
        fprintf(stderr, "usage: %s ab|in-place OLD NEW PACKAGE KEY ERASE WRITE READ ERASED "
                        "[SCRATCH_BLOCKS]\n",
                argv[0]);
        return 2;
    }
    in_place = strcmp(argv[1], "in-place") == 0;
    memset(&d, 0, sizeof d);
    if (!load(argv[2], &d.old_image) || !load(argv[3], &d.new_image) ||
        !load(argv[4], &package) || !load(argv[5], &key) || key.len != FOTA_KEY_LEN) {
        return 2;
    }
    d.erase_size = strtoull(argv[6], NULL, 10);
    d.write_size = (uint32_t)strtoul(argv[7], NULL, 10);
    d.read_size = (uint32_t)strtoul(argv[8], NULL, 10);
    d.erased = (uint8_t)strtoul(argv[9], NULL, 10);
    if (argc > 10) {
        scratch_blocks = strtoull(argv[10], NULL, 10);
    }
    if (d.erase_size == 0 || d.write_size == 0 || d.read_size == 0 ||
        fota_agent_work_len(d.write_size, d.read_size) > sizeof work) {
        fprintf(stderr, "harness: unsupported geometry\n");
        return 2;
    }

    /* The layouts of agent/tests/common: A/B = source, target, journal;
     * in place = image, scratch, journal; the journal is 2 blocks. */
    memset(&config, 0, sizeof config);
    slot = round_up(d.old_image.len > d.new_image.len ? d.old_image.len : d.new_image.len,
                    d.erase_size);
    config.key_count = 1;
    memcpy(config.keys[0], key.bytes, FOTA_KEY_LEN);
    memcpy(config.device_class, "test-board", 10);
    config.source.start = 0;
    config.source.len = slot;
    if (in_place) {
        config.mode = FOTA_MODE_IN_PLACE;
        config.scratch.start = slot;
        config.scratch.len = scratch_blocks * d.erase_size;
        config.journal.start = slot + config.scratch.len;
        d.target_at = 0;
        d.window[0][0] = 0;
        d.window[0][1] = config.journal.start;
    } else {
        config.mode = FOTA_MODE_AB;
        config.target.start = slot;
        config.target.len = slot;
        config.journal.start = 2 * slot;
        d.target_at = slot;
        d.window[0][0] = slot;
        d.window[0][1] = 2 * slot;
    }
    config.journal.len = 2 * d.erase_size;
    d.window[1][0] = config.journal.start;
    d.window[1][1] = config.journal.start + config.journal.len;
    d.windows = 2;
    d.capacity = config.journal.start + config.journal.len;
    d.source_at = 0;

    if (!argument_checks(&config)) {
        return 1;
    }
    rc = fota_agent_init(&agent, &config);
    if (rc != FOTA_OK) {
        fprintf(stderr, "harness: fota_agent_init: %d\n", (int)rc);
        return 1;
    }

    /* The clean run: counts the ops and records which are erases. */
    if (!dev_new(&f, &d) || !dev_record_ops(&f)) {
        return 2;
    }
    rc = run(&agent, &f, &package, &report);
    dev_faults(&f, faults);
    if (rc != FOTA_OK || !dev_is_new_image(&f, &d) || faults[0] != 0 || faults[1] != 0 ||
        faults[2] != 0) {
        fprintf(stderr,
                "harness: clean run: status %d detail %d, bit-exact %d, double writes %lu, "
                "outside the layout %lu, misaligned %lu\n",
                (int)rc, (int)report.detail, dev_is_new_image(&f, &d),
                (unsigned long)faults[0], (unsigned long)faults[1], (unsigned long)faults[2]);
        return 1;
    }
    clean_ops = dev_ops(&f);
    dev_erases(&f, &clean_erases, &max_erases);
    /* Again: finished already, nothing written. */
    rc = run(&agent, &f, &package, &report);
    if (rc != FOTA_OK || !report.already_finished || dev_ops(&f) != clean_ops) {
        fprintf(stderr, "harness: the second run did not find the update finished\n");
        return 1;
    }

    /* Every op, every variant that fits it: cut, power back, resume. */
    for (k = 0; k < clean_ops; k++) {
        for (v = 0; v < VARIANTS; v++) {
            Dev g;
            const char *why = NULL;
            int is_erase = dev_op_is_erase(&f, k);
            if ((v == TORN_PROGRAM && is_erase) || (v == TORN_ERASE && !is_erase)) {
                continue;
            }
            if (!dev_new(&g, &d)) {
                return 2;
            }
            dev_cut_at(&g, k, v, k * UINT64_C(0x9E3779B9) ^ (uint64_t)v ^ UINT64_C(42));
            rc = run(&agent, &g, &package, &report);
            if (rc != FOTA_ERR_POWER_LOST) {
                why = "the cut run did not report FOTA_ERR_POWER_LOST";
            } else {
                dev_power_on(&g);
                rc = run(&agent, &g, &package, &report);
                dev_faults(&g, faults);
                if (rc != FOTA_OK) {
                    why = "the resume failed";
                } else if (!dev_is_new_image(&g, &d)) {
                    why = "the target is not the new image";
                } else if (faults[1] != 0 || faults[2] != 0) {
                    why = "a write outside the layout or misaligned";
                }
                resumed += report.resumed;
            }
            cuts[v]++;
            if (why != NULL) {
                if (failures < 10) {
                    fprintf(stderr, "harness: %s@%lu: %s (status %d, detail %d)\n",
                            VARIANT_NAMES[v], (unsigned long)k, why, (int)rc,
                            (int)report.detail);
                }
                failures++;
            }
            dev_free(&g);
        }
    }
    printf("fota-agent C harness (%s): %s erase %lu write %lu read %lu erased 0x%02x, package %lu B: "
           "clean run %lu ops (%lu erases, max %lu per block); cuts %lu (not-done %lu, done %lu, "
           "torn-program %lu, torn-erase %lu), resumed %lu, failures %lu\n",
           DEVICE_NAME, in_place ? "in-place" : "ab", (unsigned long)d.erase_size,
           (unsigned long)d.write_size, (unsigned long)d.read_size, (unsigned)d.erased,
           (unsigned long)package.len, (unsigned long)clean_ops, (unsigned long)clean_erases,
           (unsigned long)max_erases, (unsigned long)(cuts[0] + cuts[1] + cuts[2] + cuts[3]),
           (unsigned long)cuts[0], (unsigned long)cuts[1], (unsigned long)cuts[2],
           (unsigned long)cuts[3], (unsigned long)resumed, (unsigned long)failures);
    dev_free(&f);
    free((void *)d.old_image.bytes);
    free((void *)d.new_image.bytes);
    free((void *)package.bytes);
    free((void *)key.bytes);
    return failures == 0 ? 0 : 1;
}
