/*
 * fsm.c - table driven lifecycle state machine.
 */
#include <stddef.h>
#include <string.h>

#include "sensord.h"

#define TAG "fsm"

enum action {
    ACT_NONE = 0,
    ACT_CLEAR_RETRIES,
    ACT_RETRY,
    ACT_FAULT,
    ACT_REBOOT
};

struct transition {
    uint8_t from;
    uint8_t event;
    uint8_t to;
    uint8_t action;
};

#define ANY_STATE 0xffu

static const struct transition table[] = {
    { ST_BOOT,      EV_POWER_ON,    ST_INIT,      ACT_NONE },
    { ST_INIT,      EV_INIT_OK,     ST_IDLE,      ACT_CLEAR_RETRIES },
    { ST_INIT,      EV_INIT_FAIL,   ST_ERROR,     ACT_FAULT },
    { ST_IDLE,      EV_TIMER,       ST_SAMPLING,  ACT_NONE },
    { ST_IDLE,      EV_SLEEP,       ST_SLEEP,     ACT_NONE },
    { ST_SAMPLING,  EV_SAMPLE_DONE, ST_UPLOADING, ACT_CLEAR_RETRIES },
    { ST_SAMPLING,  EV_TIMER,       ST_SAMPLING,  ACT_NONE },
    { ST_UPLOADING, EV_UPLOAD_OK,   ST_IDLE,      ACT_CLEAR_RETRIES },
    { ST_UPLOADING, EV_UPLOAD_FAIL, ST_UPLOADING, ACT_RETRY },
    { ST_SLEEP,     EV_WAKE,        ST_IDLE,      ACT_NONE },
    { ST_SLEEP,     EV_TIMER,       ST_IDLE,      ACT_NONE },
    { ST_ERROR,     EV_RESET,       ST_BOOT,      ACT_REBOOT },
    { ANY_STATE,    EV_FAULT,       ST_ERROR,     ACT_FAULT },
    { ANY_STATE,    EV_RESET,       ST_BOOT,      ACT_REBOOT },
};

static const char *const state_names[ST_COUNT] = {
    "boot", "init", "idle", "sampling", "uploading", "sleep", "error"
};

static const char *const event_names[EV_COUNT] = {
    "power_on", "init_ok", "init_fail", "timer", "sample_done",
    "upload_ok", "upload_fail", "sleep", "wake", "fault", "reset"
};

void fsm_init(struct fsm *f, uint8_t max_retries)
{
    memset(f, 0, sizeof *f);
    f->state = ST_BOOT;
    f->prev = ST_BOOT;
    f->max_retries = max_retries;
}

const char *fsm_state_name(enum dev_state s)
{
    return ((unsigned)s < ST_COUNT) ? state_names[s] : "?";
}

static const char *fsm_event_name(enum dev_event ev)
{
    return ((unsigned)ev < EV_COUNT) ? event_names[ev] : "?";
}

int fsm_event_from_name(const char *name)
{
    unsigned i;

    for (i = 0; i < EV_COUNT; i++) {
        if (strcmp(name, event_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

static const struct transition *lookup(enum dev_state s, enum dev_event ev)
{
    size_t i;

    /* exact matches first, wildcard rows are at the end of the table */
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].event == ev && (table[i].from == s || table[i].from == ANY_STATE))
            return &table[i];
    }
    return NULL;
}

static enum dev_state run_action(struct fsm *f, const struct transition *t,
                                 enum dev_event ev)
{
    enum dev_state next = (enum dev_state)t->to;

    switch ((enum action)t->action) {
    case ACT_CLEAR_RETRIES:
        f->retries = 0;
        break;
    case ACT_RETRY:
        f->retries++;
        if (f->retries > f->max_retries) {
            LOG_E(TAG, "upload failed %u times, giving up", (unsigned)f->retries - 1u);
            f->faults++;
            next = ST_ERROR;
        } else {
            LOG_W(TAG, "upload retry %u/%u", (unsigned)f->retries,
                  (unsigned)f->max_retries);
        }
        break;
    case ACT_FAULT:
        f->faults++;
        LOG_E(TAG, "fault in state %s (event %s)", fsm_state_name(f->state),
              fsm_event_name(ev));
        break;
    case ACT_REBOOT:
        f->retries = 0;
        LOG_I(TAG, "reboot requested");
        break;
    case ACT_NONE:
    default:
        break;
    }
    return next;
}

int fsm_dispatch(struct fsm *f, enum dev_event ev)
{
    const struct transition *t;
    enum dev_state next;

    if ((unsigned)ev >= EV_COUNT)
        return -1;
    t = lookup(f->state, ev);
    if (t == NULL) {
        LOG_D(TAG, "event %s ignored in %s", fsm_event_name(ev),
              fsm_state_name(f->state));
        return -1;
    }
    next = run_action(f, t, ev);
    if (next != f->state) {
        LOG_I(TAG, "%s -> %s", fsm_state_name(f->state), fsm_state_name(next));
        f->prev = f->state;
        f->state = next;
        f->entered_ms = log_uptime_ms();
    }
    f->transitions++;
    return 0;
}
