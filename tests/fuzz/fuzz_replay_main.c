/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deterministic regression driver for the fuzz targets, linked with every fuzz_<what>.c when it
 * is not built as a libFuzzer binary (and always for the meson 'fuzz' suite).
 *
 *   fuzz_<what> [--iterations N] [--seed S] PATH...
 *
 * Each PATH is an input file or a directory of them (its regular files, in name order). Every
 * input runs once as it is; then N inputs (default 2000, split evenly over the seeds) are derived
 * from them by a fixed pseudo-random mutator (xorshift64*, seed S, default below), so a run is
 * the same on every machine and every time. Each input is handed to LLVMFuzzerTestOneInput() in
 * a buffer of exactly its size (so an over-read is caught by ASan, as under libFuzzer).
 *
 * Before each run the input is written to ./<program>.last-input: when a run crashes or exceeds
 * the per-input time limit (10 s), that file is the reproducer (`fuzz_<what> FILE` runs it
 * alone, or feed it to the libFuzzer binary).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ITERATIONS 2000
#define DEFAULT_SEED 0x766972656f2d667aULL /* "vireo-fz" */
#define REPLAY_MAX_INPUT (128 * 1024)
#define INPUT_TIMEOUT_S 10

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

struct input {
	char *name;
	uint8_t *data;
	size_t size;
};

static struct input *inputs;
static size_t nr_inputs, cap_inputs;
static uint64_t rng_state;
static int save_fd = -1;
static char save_path[4096];

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform-enough value in [0, n); n > 0. */
static size_t below(size_t n)
{
	return (size_t)(rng() % n);
}

static void die(const char *fmt, const char *arg, int err)
{
	fprintf(stderr, "fuzz replay: ");
	fprintf(stderr, fmt, arg);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fprintf(stderr, "\n");
	exit(2);
}

static void add_file(const char *path)
{
	struct stat st;
	struct input *in;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		die("cannot open '%s'", path, errno);
	if ((uint64_t)st.st_size > REPLAY_MAX_INPUT)
		die("'%s' is larger than 128 KiB: keep seeds small", path, 0);
	if (nr_inputs == cap_inputs) {
		cap_inputs = cap_inputs ? cap_inputs * 2 : 16;
		inputs = realloc(inputs, cap_inputs * sizeof(*inputs));
		if (!inputs)
			die("out of memory%s", "", 0);
	}
	in = &inputs[nr_inputs++];
	in->name = strdup(path);
	in->size = (size_t)st.st_size;
	in->data = malloc(in->size ? in->size : 1);
	if (!in->name || !in->data)
		die("out of memory%s", "", 0);
	while (got < in->size) {
		ssize_t n = read(fd, in->data + got, in->size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("cannot read '%s'", path, n < 0 ? errno : EIO);
		got += (size_t)n;
	}
	close(fd);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(const char *path)
{
	struct stat st;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (stat(path, &st) < 0)
		die("cannot find '%s'", path, errno);
	if (!S_ISDIR(st.st_mode)) {
		add_file(path);
		return;
	}
	d = opendir(path);
	if (!d)
		die("cannot open directory '%s'", path, errno);
	while ((de = readdir(d))) {
		char *full;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&full, "%s/%s", path, de->d_name) < 0)
			die("out of memory%s", "", 0);
		if (stat(full, &st) < 0 || !S_ISREG(st.st_mode)) {
			free(full);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				die("out of memory%s", "", 0);
		}
		names[n++] = full;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		add_file(names[i]);
		free(names[i]);
	}
	free(names);
}

/* Little-endian values that tend to sit on a boundary somewhere. */
static uint64_t interesting(void)
{
	static const uint64_t v[] = {
		0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 511, 512, 1023,
		1024, 4095, 4096, 4097, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000,
		0xffffffff, 0x100000000ULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL,
		UINT64_MAX, UINT64_MAX - 1, 0x100000, 0x200000, 0xc0000000, 0x3fffffff,
	};
	uint64_t x = v[below(sizeof(v) / sizeof(v[0]))];

	return (rng() & 7) == 0 ? 0 - x : x;
}

/* Applies one random edit to buf[0..*len) (capacity REPLAY_MAX_INPUT). */
static void mutate_once(uint8_t *buf, size_t *len)
{
	size_t n = *len, at, k;
	unsigned int op = (unsigned int)below(10);

	if (n == 0 && op != 5)
		op = 5;
	switch (op) {
	case 0: /* flip a bit */
		buf[below(n)] ^= (uint8_t)(1u << below(8));
		break;
	case 1: /* random byte */
		buf[below(n)] = (uint8_t)rng();
		break;
	case 2: /* an interesting 1/2/4/8-byte value */
		k = (size_t)1 << below(4);
		if (k > n)
			k = n;
		at = below(n - k + 1);
		{
			uint64_t v = interesting();

			memcpy(buf + at, &v, k);
		}
		break;
	case 3: /* add or subtract a little in a 1/2/4-byte field */
		k = (size_t)1 << below(3);
		if (k > n)
			k = 1;
		at = below(n - k + 1);
		{
			uint32_t v = 0;
			int32_t d = (int32_t)below(33) - 16;

			memcpy(&v, buf + at, k);
			v += (uint32_t)d;
			memcpy(buf + at, &v, k);
		}
		break;
	case 4: /* delete a chunk */
		at = below(n);
		k = 1 + below(n - at < 64 ? n - at : 64);
		memmove(buf + at, buf + at + k, n - at - k);
		*len = n - k;
		break;
	case 5: /* insert random bytes */
		k = 1 + below(32);
		if (n + k > REPLAY_MAX_INPUT)
			break;
		at = below(n + 1);
		memmove(buf + at + k, buf + at, n - at);
		for (size_t i = 0; i < k; i++)
			buf[at + i] = (rng() & 1) ? (uint8_t)rng() : buf[(at + k + i) % (n + k)];
		*len = n + k;
		break;
	case 6: /* truncate */
		*len = below(n + 1);
		break;
	case 7: /* copy a chunk over another place */
		k = 1 + below(n < 128 ? n : 128);
		at = below(n - k + 1);
		memmove(buf + below(n - k + 1), buf + at, k);
		break;
	case 8: { /* splice in a chunk of another input, at the same offset */
		const struct input *o = &inputs[below(nr_inputs)];

		if (o->size == 0)
			break;
		at = below(o->size);
		k = 1 + below(o->size - at < 256 ? o->size - at : 256);
		if (at + k > REPLAY_MAX_INPUT)
			break;
		if (at > n)
			memset(buf + n, 0, at - n);
		memcpy(buf + at, o->data + at, k);
		if (at + k > n)
			*len = at + k;
		break;
	}
	default: /* fill a run with one byte */
		k = 1 + below(n < 16 ? n : 16);
		at = below(n - k + 1);
		memset(buf + at, (rng() & 1) ? 0xff : 0, k);
		break;
	}
}

static void save_input(const uint8_t *data, size_t size)
{
	if (save_fd < 0)
		return;
	if (ftruncate(save_fd, 0) < 0 || pwrite(save_fd, data, size, 0) != (ssize_t)size) {
		close(save_fd);
		save_fd = -1;
	}
}

static void on_alarm(int sig)
{
	static const char msg[] = "fuzz replay: an input ran longer than 10 s (a hang?)\n";

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(3);
}

static void run_one(const uint8_t *data, size_t size)
{
	/* an exact-size copy: reading past the input is an ASan error, as under libFuzzer */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		die("out of memory%s", "", 0);
	memcpy(copy, data, size);
	save_input(copy, size);
	alarm(INPUT_TIMEOUT_S);
	LLVMFuzzerTestOneInput(copy, size);
	alarm(0);
	free(copy);
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--iterations N] [--seed S] FILE-OR-CORPUS-DIR...\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long long iterations = DEFAULT_ITERATIONS, seed = DEFAULT_SEED;
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	uint8_t *buf;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
		if (i + 1 >= argc)
			usage(prog);
		if (!strcmp(argv[i], "--iterations"))
			iterations = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 0);
		else
			usage(prog);
	}
	if (i >= argc)
		usage(prog);
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (; i < argc; i++)
		add_path(argv[i]);
	if (nr_inputs == 0)
		die("no input files in the given paths%s", "", 0);

	snprintf(save_path, sizeof(save_path), "%s.last-input", prog);
	save_fd = open(save_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	signal(SIGALRM, on_alarm);
	rng_state = seed ? seed : 1;

	for (size_t s = 0; s < nr_inputs; s++)
		run_one(inputs[s].data, inputs[s].size);

	buf = malloc(REPLAY_MAX_INPUT);
	if (!buf)
		die("out of memory%s", "", 0);
	for (unsigned long long it = 0; it < iterations; it++) {
		const struct input *in = &inputs[it % nr_inputs];
		size_t len = in->size, edits = 1 + below(4);

		memcpy(buf, in->data, len);
		for (size_t e = 0; e < edits; e++)
			mutate_once(buf, &len);
		run_one(buf, len);
	}
	free(buf);
	if (save_fd >= 0) {
		close(save_fd);
		unlink(save_path);
	}
	fprintf(stderr, "%s: %zu inputs and %llu mutations (seed 0x%llx) ran without a finding\n",
		prog, nr_inputs, iterations, seed);
	for (size_t s = 0; s < nr_inputs; s++) {
		free(inputs[s].name);
		free(inputs[s].data);
	}
	free(inputs);
	return 0;
}
