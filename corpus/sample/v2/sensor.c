/*
 * sensor.c - simulated NTC temperature channel.
 *
 * On the board the NTC sits in a divider against a 10k pull-up and is read
 * by the 12-bit ADC.  Here the ADC is driven by a deterministic xorshift
 * generator so runs are reproducible.
 */
#include <string.h>

#include "sensord.h"

#define TAG "sens"

#define ADC_MAX         4095
#define NTC_TABLE_SHIFT 7          /* one table point every 128 counts */

/*
 * NTC 10k B3977 (rev C BOM) against 10k pull-up, temperature in 1/100
 * degC for ADC codes 0, 128, 256, ... 4096.  Ends are clamped to the
 * sensor range.
 */
static const int16_t ntc_table[33] = {
     15000,  12837,  10095,   8610,   7592,   6815,   6182,   5646,
      5176,   4756,   4373,   4019,   3687,   3373,   3073,   2782,
      2500,   2223,   1949,   1675,   1400,   1121,    836,    541,
       231,    -97,   -453,   -846,  -1296,  -1834,  -2532,  -3604,
     -5500,
};

static struct {
    int32_t hist[SENSOR_WINDOW_MAX];
    unsigned window;
    unsigned count;
    unsigned next;
} filt;

static uint32_t prng_state;
static struct sensor_stats stats;

void sensor_reset_stats(void)
{
    memset(&stats, 0, sizeof stats);
    stats.temp_min = INT32_MAX;
    stats.temp_max = INT32_MIN;
}

void sensor_init(uint32_t seed, unsigned window)
{
    prng_state = seed ? seed : 0x2545f491u;
    memset(&filt, 0, sizeof filt);
    if (window == 0)
        window = 1;
    if (window > SENSOR_WINDOW_MAX)
        window = SENSOR_WINDOW_MAX;
    filt.window = window;
    sensor_reset_stats();
}

static uint16_t read_adc(void)
{
    uint32_t x = prng_state;
    int32_t v;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    prng_state = x;
    /* room temperature around 2000 counts plus a little noise */
    v = 1900 + (int32_t)(x % 400u) + (int32_t)((x >> 16) & 0x1fu) - 16;
    return (uint16_t)(v < 0 ? 0 : v > ADC_MAX ? ADC_MAX : v);
}

int32_t sensor_adc_to_cdeg(uint16_t adc)
{
    unsigned idx;
    int32_t frac, lo, hi;

    if (adc > ADC_MAX)
        adc = ADC_MAX;
    idx = adc >> NTC_TABLE_SHIFT;
    frac = (int32_t)(adc & ((1u << NTC_TABLE_SHIFT) - 1u));
    lo = ntc_table[idx];
    hi = ntc_table[idx + 1];
    return lo + ((hi - lo) * frac) / (1 << NTC_TABLE_SHIFT);
}

static int32_t filter_push(int32_t v)
{
    int64_t sum = 0;
    unsigned i;

    filt.hist[filt.next] = v;
    filt.next = (filt.next + 1) % filt.window;
    if (filt.count < filt.window)
        filt.count++;
    for (i = 0; i < filt.count; i++)
        sum += filt.hist[i];
    /* divide by the samples actually held, not the window size (#112) */
    return (int32_t)(sum / (int64_t)filt.count);
}

void sensor_sample(struct sensor_reading *out)
{
    out->raw_adc = read_adc();
    out->temp_cdeg = sensor_adc_to_cdeg(out->raw_adc);
    out->temp_filt = filter_push(out->temp_cdeg);

    stats.samples++;
    stats.temp_sum += out->temp_cdeg;
    if (out->temp_cdeg < stats.temp_min)
        stats.temp_min = out->temp_cdeg;
    if (out->temp_cdeg > stats.temp_max)
        stats.temp_max = out->temp_cdeg;
    LOG_D(TAG, "adc=%u t=%ld", (unsigned)out->raw_adc, (long)out->temp_cdeg);
}

void sensor_get_stats(struct sensor_stats *st)
{
    *st = stats;
}
