/*
 * ringbuf.c - byte ring buffer used for the emulated UART receive path.
 */
#include "sensord.h"

int rb_init(struct ringbuf *rb, uint8_t *storage, size_t size)
{
    if (rb == NULL || storage == NULL)
        return -1;
    if (size < 2 || size > 32768u || (size & (size - 1)) != 0)
        return -1;
    rb->buf = storage;
    rb->mask = (uint16_t)(size - 1);
    rb->head = 0;
    rb->tail = 0;
    rb->overruns = 0;
    return 0;
}

size_t rb_count(const struct ringbuf *rb)
{
    return (uint16_t)(rb->head - rb->tail);
}

size_t rb_space(const struct ringbuf *rb)
{
    return (size_t)rb->mask + 1u - rb_count(rb);
}

int rb_put(struct ringbuf *rb, uint8_t byte)
{
    if (rb_space(rb) == 0) {
        rb->overruns++;
        return -1;
    }
    rb->buf[rb->head & rb->mask] = byte;
    rb->head = (uint16_t)(rb->head + 1u);
    return 0;
}

int rb_get(struct ringbuf *rb, uint8_t *byte)
{
    if (rb_count(rb) == 0)
        return -1;
    *byte = rb->buf[rb->tail & rb->mask];
    rb->tail = (uint16_t)(rb->tail + 1u);
    return 0;
}

size_t rb_write(struct ringbuf *rb, const uint8_t *data, size_t len)
{
    size_t n = 0;

    while (n < len && rb_put(rb, data[n]) == 0)
        n++;
    return n;
}

size_t rb_read(struct ringbuf *rb, uint8_t *data, size_t len)
{
    size_t n = 0;

    while (n < len && rb_get(rb, &data[n]) == 0)
        n++;
    return n;
}

size_t rb_discard(struct ringbuf *rb, size_t len)
{
    size_t avail = rb_count(rb);

    if (len > avail)
        len = avail;
    rb->tail = (uint16_t)(rb->tail + len);
    return len;
}
