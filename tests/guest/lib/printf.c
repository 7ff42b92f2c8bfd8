/* SPDX-License-Identifier: Apache-2.0 */
/* A small printf: formats into a sink that either fills a buffer or streams to the UART. */
#include "lib/lib.h"
#include "drivers/uart.h"

struct sink {
	char *buf;
	size_t size;    /* capacity of buf */
	size_t len;     /* bytes in buf */
	size_t total;   /* bytes produced */
	bool flush;     /* stream to the UART when buf fills (printf) */
};

static void put(struct sink *s, char c)
{
	s->total++;
	if (s->len + 1 < s->size) {
		s->buf[s->len++] = c;
		return;
	}
	if (s->flush) {
		uart_write(s->buf, s->len);
		s->len = 0;
		s->buf[s->len++] = c;
	}
}

static void put_pad(struct sink *s, char c, int n)
{
	while (n-- > 0)
		put(s, c);
}

static void put_num(struct sink *s, uint64_t v, unsigned base, bool upper, bool neg, int width,
		    bool left, char pad, const char *prefix)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, plen = strlen(prefix) + neg;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (!left && pad == ' ')
		put_pad(s, ' ', width - n - plen);
	if (neg)
		put(s, '-');
	while (*prefix)
		put(s, *prefix++);
	if (!left && pad == '0')
		put_pad(s, '0', width - n - plen);
	while (n)
		put(s, tmp[--n]);
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		bool left = false, alt = false;
		char pad = ' ';
		int width = 0, prec = -1, lng = 0;
		size_t start;

		if (*fmt != '%') {
			put(s, *fmt);
			continue;
		}
		for (fmt++;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '0')
				pad = '0';
			else if (*fmt == '#')
				alt = true;
			else
				break;
		}
		for (; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + *fmt - '0';
		if (*fmt == '.')
			for (prec = 0, fmt++; *fmt >= '0' && *fmt <= '9'; fmt++)
				prec = prec * 10 + *fmt - '0';
		for (; *fmt == 'l' || *fmt == 'z'; fmt++)
			lng++;
		start = s->total;
		switch (*fmt) {
		case 'd': case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);

			put_num(s, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, false, v < 0, width, false,
				left ? ' ' : pad, "");
			break;
		}
		case 'u': case 'x': case 'X': {
			uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			unsigned base = *fmt == 'u' ? 10 : 16;

			put_num(s, v, base, *fmt == 'X', false, width, false, left ? ' ' : pad,
				alt && base == 16 && v ? "0x" : "");
			break;
		}
		case 'p':
			put_num(s, (uintptr_t)va_arg(ap, void *), 16, false, false, width, false, ' ',
				"0x");
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			int n;

			if (!str)
				str = "(null)";
			n = prec >= 0 ? (int)strnlen(str, prec) : (int)strlen(str);
			if (!left)
				put_pad(s, ' ', width - n);
			for (int i = 0; i < n; i++)
				put(s, str[i]);
			break;
		}
		case 'c':
			if (!left)
				put_pad(s, ' ', width - 1);
			put(s, (char)va_arg(ap, int));
			break;
		case '%':
			put(s, '%');
			break;
		default:
			put(s, '%');
			if (*fmt)
				put(s, *fmt);
			else
				fmt--;
			break;
		}
		if (left)
			put_pad(s, ' ', width - (int)(s->total - start));
	}
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink s = { .buf = buf, .size = size };

	format(&s, fmt, ap);
	if (size)
		buf[s.len] = '\0';
	return s.total;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int printf(const char *fmt, ...)
{
	char buf[128];
	struct sink s = { .buf = buf, .size = sizeof(buf), .flush = true };
	va_list ap;

	va_start(ap, fmt);
	format(&s, fmt, ap);
	va_end(ap);
	uart_write(buf, s.len);
	return s.total;
}

static char err_buf[160];

void err_set(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
}

const char *err_get(void)
{
	return err_buf[0] ? err_buf : "unknown error";
}
