/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VMDK text descriptor (vmdk_format.h): parsing what vireo needs of it (version, content
 * ids, createType, the parent's name hint, the extent lines) with every line bounded and every
 * number checked, the CID rewrite a first write does, the extent path rule, and the text of a
 * new descriptor. Pure: no I/O.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/vmdk_format.h"
#include "common/util.h"

static const char *const type_names[] = {
	[VMDK_EXTENT_FLAT] = "FLAT",
	[VMDK_EXTENT_SPARSE] = "SPARSE",
	[VMDK_EXTENT_ZERO] = "ZERO",
	[VMDK_EXTENT_VMFS] = "VMFS",
	[VMDK_EXTENT_VMFSSPARSE] = "VMFSSPARSE",
	[VMDK_EXTENT_VMFSRDM] = "VMFSRDM",
	[VMDK_EXTENT_VMFSRAW] = "VMFSRAW",
	[VMDK_EXTENT_SESPARSE] = "SESPARSE",
};

static const char *const access_names[] = {
	[VMDK_ACCESS_RW] = "RW",
	[VMDK_ACCESS_RDONLY] = "RDONLY",
	[VMDK_ACCESS_NOACCESS] = "NOACCESS",
};

const char *vmdk_extent_type_name(enum vmdk_extent_type t)
{
	return (size_t)t < ARRAY_SIZE(type_names) ? type_names[t] : "?";
}

/* One line being parsed: [p, end) with the cursor at p. */
struct cursor {
	const char *p, *end;
	unsigned line;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static void skip_spaces(struct cursor *c)
{
	while (c->p < c->end && is_space(*c->p))
		c->p++;
}

/* The next word (up to a space or the end) into [*w, *w + *n). */
static void word(struct cursor *c, const char **w, size_t *n)
{
	skip_spaces(c);
	*w = c->p;
	while (c->p < c->end && !is_space(*c->p))
		c->p++;
	*n = (size_t)(c->p - *w);
}

static bool word_is(const char *w, size_t n, const char *s)
{
	return n == strlen(s) && !memcmp(w, s, n);
}

/* A decimal number of at most 20 digits that fits 64 bits; -1 otherwise. */
static int dec(const char *w, size_t n, uint64_t *v)
{
	*v = 0;
	if (!n || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < '0' || w[i] > '9' || *v > (UINT64_MAX - (uint64_t)(w[i] - '0')) / 10)
			return -1;
		*v = *v * 10 + (uint64_t)(w[i] - '0');
	}
	return 0;
}

/* A hexadecimal u32 of 1 to 8 digits; -1 otherwise. */
static int hex32(const char *w, size_t n, uint32_t *v)
{
	*v = 0;
	if (!n || n > 8)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char ch = w[i];
		unsigned d;

		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

/* A copy of [w, w + n) without the quotes around it (when it has them), or NULL with errp
 * set: an empty name, a quote or control character inside, or one longer than VMDK_MAX_NAME. */
static char *string(const char *what, unsigned line, const char *w, size_t n,
		    struct error **errp)
{
	char *s;

	if (n >= 2 && w[0] == '"' && w[n - 1] == '"') {
		w++;
		n -= 2;
	}
	if (!n || n > VMDK_MAX_NAME) {
		error_setg(errp, "line %u: the %s is empty or longer than %d bytes", line, what,
			   VMDK_MAX_NAME);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)w[i] < 0x20 || w[i] == '"' || w[i] == 0x7f) {
			error_setg(errp, "line %u: the %s holds a quote or a control character", line,
				   what);
			return NULL;
		}
	}
	s = strndup(w, n);
	if (!s)
		error_setg(errp, "out of memory");
	return s;
}

/* The extent's quoted file name: "..." (spaces allowed inside, no quote). */
static char *quoted(struct cursor *c, struct error **errp)
{
	const char *start, *q;

	skip_spaces(c);
	if (c->p >= c->end || *c->p != '"') {
		error_setg(errp, "line %u: the extent's file name is missing or not in quotes",
			   c->line);
		return NULL;
	}
	start = c->p;
	q = memchr(c->p + 1, '"', (size_t)(c->end - c->p - 1));
	if (!q) {
		error_setg(errp, "line %u: the extent's file name has no closing quote", c->line);
		return NULL;
	}
	c->p = q + 1;
	return string("extent's file name", c->line, start, (size_t)(c->p - start), errp);
}

static int lookup(const char *const *names, size_t nr, const char *w, size_t n)
{
	for (size_t i = 0; i < nr; i++)
		if (word_is(w, n, names[i]))
			return (int)i;
	return -1;
}

/* ACCESS SECTORS TYPE ["FILE" [OFFSET]] */
static int parse_extent(struct cursor *c, struct vmdk_desc *d, struct error **errp)
{
	struct vmdk_desc_extent *e, *grown;
	const char *w;
	size_t n;
	int v;

	if (d->nr_extents >= VMDK_MAX_EXTENTS) {
		error_setg(errp, "line %u: more than %d extents", c->line, VMDK_MAX_EXTENTS);
		return -1;
	}
	grown = realloc(d->extents, (d->nr_extents + 1) * sizeof(*grown));
	if (!grown) {
		error_setg(errp, "out of memory");
		return -1;
	}
	d->extents = grown;
	e = &d->extents[d->nr_extents++];
	*e = (struct vmdk_desc_extent){ .line = c->line };
	word(c, &w, &n);
	e->access = (enum vmdk_access)lookup(access_names, ARRAY_SIZE(access_names), w, n);
	word(c, &w, &n);
	if (dec(w, n, &e->sectors) || e->sectors > VMDK_MAX_CAPACITY_SECTORS) {
		error_setg(errp, "line %u: the extent's size '%.*s' is not a number of sectors up "
			   "to %llu", c->line, (int)MIN(n, 32), w, VMDK_MAX_CAPACITY_SECTORS);
		return -1;
	}
	word(c, &w, &n);
	v = lookup(type_names, ARRAY_SIZE(type_names), w, n);
	if (v < 0) {
		error_setg(errp, "line %u: unknown extent type '%.*s'", c->line, (int)MIN(n, 32), w);
		return -1;
	}
	e->type = (enum vmdk_extent_type)v;
	if (e->type != VMDK_EXTENT_ZERO && !(e->filename = quoted(c, errp)))
		return -1;
	word(c, &w, &n);
	if (n && e->type != VMDK_EXTENT_FLAT && e->type != VMDK_EXTENT_VMFS) {
		error_setg(errp, "line %u: '%.*s' after a %s extent", c->line, (int)MIN(n, 32), w,
			   type_names[e->type]);
		return -1;
	}
	if (n && (dec(w, n, &e->offset) || e->offset > UINT64_MAX / VMDK_SECTOR)) {
		error_setg(errp, "line %u: the extent's offset '%.*s' is not a number of sectors",
			   c->line, (int)MIN(n, 32), w);
		return -1;
	}
	word(c, &w, &n);
	if (n) {
		error_setg(errp, "line %u: unexpected '%.*s' at the end of an extent line", c->line,
			   (int)MIN(n, 32), w);
		return -1;
	}
	if (e->sectors > VMDK_MAX_CAPACITY_SECTORS - d->capacity) {
		error_setg(errp, "line %u: the extents add up to more than %llu sectors", c->line,
			   VMDK_MAX_CAPACITY_SECTORS);
		return -1;
	}
	d->capacity += e->sectors;
	return 0;
}

/* key = value, value optionally in quotes; the keys vireo uses are checked, others ignored */
static int parse_pair(struct cursor *c, const char *eq, struct vmdk_desc *d, struct error **errp)
{
	const char *k = c->p, *ke = eq, *v = eq + 1, *ve = c->end;
	size_t kn, vn;
	char *s;

	while (ke > k && is_space(ke[-1]))
		ke--;
	while (v < ve && is_space(*v))
		v++;
	while (ve > v && is_space(ve[-1]))
		ve--;
	kn = (size_t)(ke - k);
	vn = (size_t)(ve - v);
	if (word_is(k, kn, "version")) {
		uint64_t ver;

		if (dec(v, vn, &ver) || ver < 1 || ver > 3) {
			error_setg(errp, "line %u: version '%.*s' is not supported (1, 2 or 3)",
				   c->line, (int)MIN(vn, 32), v);
			return -1;
		}
		d->version = (unsigned)ver;
	} else if (word_is(k, kn, "CID") || word_is(k, kn, "parentCID")) {
		bool parent = kn != 3;

		if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
			v++;
			vn -= 2;
		}
		if (hex32(v, vn, parent ? &d->parent_cid : &d->cid)) {
			error_setg(errp, "line %u: %.*s '%.*s' is not a 32-bit hexadecimal number",
				   c->line, (int)kn, k, (int)MIN(vn, 32), v);
			return -1;
		}
		d->has_cid |= !parent;
	} else if (word_is(k, kn, "createType") || word_is(k, kn, "parentFileNameHint")) {
		bool hint = kn != 10;

		s = string(hint ? "parentFileNameHint" : "createType", c->line, v, vn, errp);
		if (!s)
			return -1;
		free(hint ? d->parent_hint : d->create_type);
		*(hint ? &d->parent_hint : &d->create_type) = s;
	}
	return 0;
}

static int parse_line(struct cursor *c, struct vmdk_desc *d, struct error **errp)
{
	const char *w, *eq;
	size_t n;

	skip_spaces(c);
	if (c->p == c->end || *c->p == '#')
		return 0;
	eq = memchr(c->p, '=', (size_t)(c->end - c->p));
	{
		struct cursor peek = *c;

		word(&peek, &w, &n);
		if (lookup(access_names, ARRAY_SIZE(access_names), w, n) >= 0)
			return parse_extent(c, d, errp);
	}
	if (eq)
		return parse_pair(c, eq, d, errp);
	error_setg(errp, "line %u: '%.*s' is neither a key=value pair nor an extent", c->line,
		   (int)MIN((size_t)(c->end - c->p), 40), c->p);
	return -1;
}

int vmdk_desc_parse(const char *text, size_t len, struct vmdk_desc *d, struct error **errp)
{
	struct cursor c = { .p = text };
	const char *end;

	*d = (struct vmdk_desc){ .parent_cid = 0xffffffff };
	if (len > VMDK_MAX_DESC_BYTES) {
		error_setg(errp, "the descriptor is larger than %d bytes", VMDK_MAX_DESC_BYTES);
		return -1;
	}
	end = memchr(text, '\0', len);
	end = end ? end : text + len;
	while (c.p < end) {
		const char *nl = memchr(c.p, '\n', (size_t)(end - c.p));

		c.end = nl ? nl : end;
		c.line++;
		if (c.end > c.p && c.end[-1] == '\r')
			c.end--;
		if (parse_line(&c, d, errp))
			return -1;
		c.p = nl ? nl + 1 : end;
	}
	if (!d->version) {
		error_setg(errp, "the descriptor has no version= line");
		return -1;
	}
	return 0;
}

void vmdk_desc_free(struct vmdk_desc *d)
{
	for (size_t i = 0; i < d->nr_extents; i++)
		free(d->extents[i].filename);
	free(d->extents);
	free(d->create_type);
	free(d->parent_hint);
	memset(d, 0, sizeof(*d));
}

char *vmdk_desc_set_cid(const char *text, size_t len, uint32_t cid, size_t *out_len)
{
	const char *end = memchr(text, '\0', len), *p = text;
	char *out;

	end = end ? end : text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;
		const char *s = p, *ve;

		while (s < le && is_space(*s))
			s++;
		if ((size_t)(le - s) >= 4 && !memcmp(s, "CID", 3)) {
			const char *eq = s + 3;

			while (eq < le && is_space(*eq))
				eq++;
			if (eq < le && *eq == '=') {
				ve = le > p && le[-1] == '\r' ? le - 1 : le;
				if (asprintf(&out, "%.*sCID=%x%.*s", (int)(s - text), text, cid,
					     (int)(end - ve), ve) < 0)
					return NULL;
				*out_len = strlen(out);
				return out;
			}
		}
		p = nl ? nl + 1 : end;
	}
	return NULL;
}

bool vmdk_extent_path_ok(const char *name)
{
	long depth = 0;

	if (name[0] == '/')
		return false;
	for (const char *p = name; *p;) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (--depth < 0)
				return false;
		} else if (n && !(n == 1 && p[0] == '.')) {
			depth++;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

char *vmdk_desc_print(const struct vmdk_desc_new *n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "# Disk DescriptorFile\nversion=1\nCID=%x\nparentCID=ffffffff\n"
		"createType=\"%s\"\n\n# Extent description\n", n->cid, n->create_type);
	for (size_t i = 0; i < n->nr_extents; i++) {
		const struct vmdk_desc_extent *e = &n->extents[i];

		fprintf(f, "RW %" PRIu64 " %s \"%s\"", e->sectors, type_names[e->type], e->filename);
		if (e->type == VMDK_EXTENT_FLAT)
			fprintf(f, " %" PRIu64, e->offset);
		fputc('\n', f);
	}
	fprintf(f, "\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"%s\"\n"
		"ddb.geometry.cylinders = \"%" PRIu64 "\"\nddb.geometry.heads = \"%u\"\n"
		"ddb.geometry.sectors = \"%u\"\nddb.adapterType = \"%s\"\n"
		"ddb.toolsVersion = \"%s\"\n", n->hw_version, n->cylinders, n->heads, n->sectors,
		n->adapter_type, n->tools_version);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
