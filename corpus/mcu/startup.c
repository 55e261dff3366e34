/*
 * Minimal Cortex-M4 startup + newlib system-call stubs for the fota MCU
 * benchmark corpus.  Bare metal, no HAL: the "UART" is a fake memory-mapped
 * data register (same address as USART1->DR on STM32F4 parts), the time base
 * is a SysTick-driven millisecond counter.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/times.h>

/* Symbols provided by cortex-m4.ld */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern uint8_t _heap_start, _heap_limit;

extern int main(void);

#define UART_SR (*(volatile uint32_t *)0x40011000u)
#define UART_DR (*(volatile uint32_t *)0x40011004u)
#define UART_TXE (1u << 7)

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPU_HZ 16000000u

static volatile uint32_t g_ticks_ms;

void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));

typedef void (*vector_t)(void);

/* 16 core exceptions + 16 external interrupt lines (all to Default_Handler). */
__attribute__((section(".isr_vector"), used))
const vector_t g_vectors[32] = {
    (vector_t)&_estack,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
};

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    uint32_t *dst = &_sdata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; )
        *dst++ = 0;

    /* 1 kHz SysTick from the core clock */
    SYST_RVR = CPU_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u;

    (void)main();
    for (;;)
        __asm volatile("wfi");
}

void Default_Handler(void)
{
    for (;;)
        ;
}

void SysTick_Handler(void)
{
    g_ticks_ms++;
}

uint32_t board_millis(void)
{
    return g_ticks_ms;
}

void board_putc(char c)
{
    while ((UART_SR & UART_TXE) == 0)
        ;
    UART_DR = (uint8_t)c;
}

void board_puts(const char *s)
{
    while (*s)
        board_putc(*s++);
}

/* ---- newlib system-call layer ------------------------------------------ */

void *_sbrk(ptrdiff_t incr)
{
    static uint8_t *brk = &_heap_start;
    uint8_t *prev = brk;
    if (incr > 0 && (size_t)(&_heap_limit - brk) < (size_t)incr) {
        errno = ENOMEM;
        return (void *)-1;
    }
    brk += incr;
    return prev;
}

int _write(int fd, const char *buf, int len)
{
    int i;
    if (fd != 1 && fd != 2) {
        errno = EBADF;
        return -1;
    }
    for (i = 0; i < len; i++)
        board_putc(buf[i]);
    return len;
}

int _read(int fd, char *buf, int len)
{
    (void)fd; (void)buf; (void)len;
    return 0;
}

int _open(const char *path, int flags, int mode)
{
    (void)path; (void)flags; (void)mode;
    errno = ENOENT;
    return -1;
}

int _close(int fd)
{
    (void)fd;
    errno = EBADF;
    return -1;
}

int _lseek(int fd, int off, int whence)
{
    (void)fd; (void)off; (void)whence;
    return 0;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR;
    return 0;
}

int _isatty(int fd)
{
    return fd >= 0 && fd <= 2;
}

int _getpid(void)
{
    return 1;
}

int _kill(int pid, int sig)
{
    (void)pid; (void)sig;
    errno = EINVAL;
    return -1;
}

void _exit(int status)
{
    (void)status;
    for (;;)
        __asm volatile("bkpt #0");
}

int _unlink(const char *path)
{
    (void)path;
    errno = ENOENT;
    return -1;
}

int _link(const char *old, const char *new_)
{
    (void)old; (void)new_;
    errno = EMLINK;
    return -1;
}

clock_t _times(struct tms *t)
{
    clock_t ms = (clock_t)g_ticks_ms;
    t->tms_utime = ms;
    t->tms_stime = 0;
    t->tms_cutime = 0;
    t->tms_cstime = 0;
    return ms;
}

int _gettimeofday(struct timeval *tv, void *tz)
{
    uint32_t ms = g_ticks_ms;
    (void)tz;
    if (tv) {
        tv->tv_sec = (time_t)(ms / 1000u);
        tv->tv_usec = (suseconds_t)((ms % 1000u) * 1000u);
    }
    return 0;
}
