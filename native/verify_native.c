/*
 * The export verifier's native core (optional): decodes the events of an
 * export in the layout audit-trail export writes, builds each hashed message
 * of docs/hash-chain.md and computes its SHA-256 (OpenSSL, the one inside
 * Node), a whole batch per call. It replaces, when it is built, the loops
 * the TypeScript verifier would otherwise run per event:
 *
 *   jsonlDecode()       JsonlLineDecoder.decode() + ChainEncoder.hashMessage()
 *                       (src/export/jsonl.ts, src/chain/encoding.ts)
 *   parquetRows()       deliverDecodedRows()'s loop + hashMessage()
 *                       (src/export/parquet.ts)
 *   parquetGroup()      decodeRowGroup()'s decodeColumn() for every column
 *                       chunk of a row group, page headers included
 *                       (src/export/parquet_decode.ts)
 *   snappyDecompress()  snappyDecompressInto() (src/export/snappy.ts)
 *   readPlain(), readHybrid(), definedCount(), spreadValues()
 *                       the per-value loops of decodeColumn(), for the
 *                       groups parquetGroup() leaves to the TypeScript
 *   chainRun()          the fast path of StreamingChainVerifier.pushBatch()
 *                       (src/chain/verifier.ts): how many events in a row
 *                       pass every check as the usual next event
 *   digestCreate/Start/Join/Hex()
 *                       a data file's SHA-256, on a thread of its own
 *
 * jsonlDecode() and parquetRows() run on up to `threads` threads (runs of
 * lines or rows; the results are exactly one thread's), parquetGroup() too
 * (a column chunk each).
 *
 * It decides nothing the TypeScript does not: an event it does not take
 * (any line or row not exactly in the writer's layout, another tenant, a
 * malformed hash, anything it does not expect) stops the batch there and is
 * handed back to the TypeScript path, which decodes that one event, or
 * refuses it with the file and line, exactly as without this module; then
 * the batch goes on here. What it takes it decodes to the same bytes as the
 * TypeScript (test/unit/native_core_matches_typescript.test.ts compares the
 * two on real, awkward and damaged input). A row group whose page headers
 * or pages are not exactly the writer's is left whole to the TypeScript
 * decoder the same way. Of the chain checks, chainRun() only finds the runs
 * of events that pass as the usual next one (sequence_no, link, recomputed
 * hash, encoding version); every other event, and every check of tenant,
 * gaps, order, anchors and split view, is the TypeScript's.
 *
 * Built by scripts/build-native.mjs (a C compiler and Node's headers; no
 * dependency, no node-gyp); without it the verifier is the same, slower.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, whose per-call provider lookup costs more than hashing one event. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

/* ---------------------------------------------------------------- helpers */

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "verify_native: bad arguments");    \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

/* A typed array argument: its bytes and its element count. */
typedef struct {
  uint8_t *data;
  size_t length; /* elements */
  size_t bytes;
} Typed;

static int typed_arg(napi_env env, napi_value v, napi_typedarray_type want, Typed *out) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok) return 0;
  if (type != want) return 0;
  out->data = (uint8_t *)data;
  out->length = length;
  switch (type) {
    case napi_int32_array: out->bytes = length * 4; break;
    case napi_float64_array:
    case napi_bigint64_array: out->bytes = length * 8; break;
    default: out->bytes = length; break;
  }
  return 1;
}

static int int_arg(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok;
}

static void put32be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void put64be(uint8_t *p, uint64_t v) {
  put32be(p, (uint32_t)(v >> 32));
  put32be(p + 4, (uint32_t)v);
}

static const uint8_t BODY_PREFIX[6] = {0x50, 0x47, 0x41, 0x54, 0x00, 0x01};

/* Hex digit values of either case, -1 for anything else: \uXXXX escapes (JSON allows both cases; hashes are lowercase, see hex32()). */
static int8_t ANY_HEX[256];

static void init_tables(void) {
  memset(ANY_HEX, -1, sizeof ANY_HEX);
  for (int i = 0; i < 10; i++) ANY_HEX['0' + i] = (int8_t)i;
  for (int i = 0; i < 6; i++) {
    ANY_HEX['a' + i] = (int8_t)(10 + i);
    ANY_HEX['A' + i] = (int8_t)(10 + i);
  }
}

/*
 * 64 lowercase hex digits at p into 32 bytes; 0 if any is not one. Eight
 * digits at a time in a 64-bit word: a byte is a digit when it is below
 * 0x80 and in 0x30-0x39 or 0x61-0x66 (each bound tested by adding to the
 * byte so that its top bit says it, no carry between bytes); its value is
 * its low nibble, plus 9 for a letter (bit 6).
 */
static int hex32(const uint8_t *p, uint8_t *into) {
  const uint64_t top = 0x8080808080808080ull, ones = 0x0101010101010101ull;
  uint64_t bad = 0;
  for (int w = 0; w < 8; w++, p += 8) {
    const uint64_t x = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
                       (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
    const uint64_t low = x & ~top; /* (a byte with its top bit set is bad anyway; without it the sums do not carry) */
    const uint64_t digit = (low + 0x50 * ones) & ~(low + 0x46 * ones) & top; /* >= 0x30 and < 0x3a */
    const uint64_t letter = (low + 0x1f * ones) & ~(low + 0x19 * ones) & top; /* >= 0x61 and < 0x67 */
    bad |= (x & top) | (~(digit | letter) & top);
    const uint64_t n = (x & 0x0f * ones) + 9 * ((x >> 6) & ones);
    uint64_t m = ((n << 4) | (n >> 8)) & 0x00ff00ff00ff00ffull;
    m = (m | (m >> 8)) & 0x0000ffff0000ffffull;
    m = (m | (m >> 16)) & 0xffffffffull;
    into[4 * w] = (uint8_t)m;
    into[4 * w + 1] = (uint8_t)(m >> 8);
    into[4 * w + 2] = (uint8_t)(m >> 16);
    into[4 * w + 3] = (uint8_t)(m >> 24);
  }
  return bad == 0;
}

/*
 * The message's chain position after the body at m[0..n): sequence_no as
 * int64 and prev_hash as 32 bytes, each with its length (docs/hash-chain.md);
 * returns the message length.
 */
static size_t chain_position(uint8_t *m, size_t n, int64_t seq, const uint8_t *prev) {
  put32be(m + n, 8);
  put64be(m + n + 4, (uint64_t)seq);
  put32be(m + n + 12, 32);
  memcpy(m + n + 16, prev, 32);
  return n + 48;
}

/* Where one event's results go: the arrays of a BatchCollector (src/export/decode_batch.ts). */
typedef struct {
  int64_t *seq;
  double *version;
  uint8_t *hashes; /* per event: prev_hash, record_hash, recomputed (96 bytes) */
  uint8_t *same;
  size_t capacity;
} Results;

static int results_args(napi_env env, napi_value *argv, Results *r) {
  Typed seq, version, hashes, same;
  if (!typed_arg(env, argv[0], napi_bigint64_array, &seq) || !typed_arg(env, argv[1], napi_float64_array, &version) ||
      !typed_arg(env, argv[2], napi_uint8_array, &hashes) || !typed_arg(env, argv[3], napi_uint8_array, &same)) {
    return 0;
  }
  r->seq = (int64_t *)seq.data;
  r->version = (double *)version.data;
  r->hashes = hashes.data;
  r->same = same.data;
  r->capacity = seq.length;
  if (version.length < r->capacity) r->capacity = version.length;
  if (same.length < r->capacity) r->capacity = same.length;
  if (hashes.length / 96 < r->capacity) r->capacity = hashes.length / 96;
  return 1;
}

/* Hashes message m[0..n) and stores event i's results; prev and record are its stored hashes. */
static void store(Results *r, size_t i, int64_t seq, double version, const uint8_t *m, size_t n, const uint8_t *prev, const uint8_t *record) {
  uint8_t *h = r->hashes + i * 96;
  /* The low-level calls: OpenSSL 3's one-shot SHA256() looks the algorithm up in its providers on every call. */
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, m, n);
  SHA256_Final(h + 64, &ctx);
  memcpy(h, prev, 32);
  memcpy(h + 32, record, 32);
  r->seq[i] = seq;
  r->version[i] = version;
  r->same[i] = memcmp(h + 32, h + 64, 32) == 0;
}

/* A growable message buffer, freed at the end of each call. */
typedef struct {
  uint8_t *data;
  size_t size;
} Scratch;

static int reserve(Scratch *s, size_t size) {
  if (size <= s->size) return 1;
  size_t next = s->size == 0 ? 64 * 1024 : s->size;
  while (next < size) {
    if (next > SIZE_MAX / 2) return 0;
    next *= 2;
  }
  uint8_t *d = realloc(s->data, next);
  if (d == NULL) return 0;
  s->data = d;
  s->size = next;
  return 1;
}

/* At most this many threads per call (the caller's --jobs). */
#define MAX_THREADS 64

/*
 * Runs work(parts[k]) for k = 0..n-1, parts 1.. on threads of their own and
 * part 0 on the calling thread; a part whose thread cannot be started runs
 * on the calling thread too. Returns when all are done.
 */
static void run_parts(void *(*work)(void *), void *parts, size_t part_size, int n) {
  pthread_t threads[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (int k = 1; k < n; k++) started[k] = pthread_create(&threads[k], NULL, work, (char *)parts + (size_t)k * part_size) == 0;
  work(parts);
  for (int k = 1; k < n; k++) {
    if (started[k]) pthread_join(threads[k], NULL);
    else work((char *)parts + (size_t)k * part_size);
  }
}

/* ------------------------------------------------------------------ JSONL */

/* The text between values in a line of JsonlFileWriter, in order (src/export/jsonl.ts). */
static const char *const KEYS[] = {
    ",\"event_id\":", ",\"tenant_id\":", ",\"occurred_at\":", ",\"ingested_at\":", ",\"actor_type\":",
    ",\"actor_id\":", ",\"actor_name\":", ",\"auth_method\":", ",\"source_ip\":", ",\"user_agent_hash\":",
    ",\"action\":", ",\"resource_type\":", ",\"resource_id\":", ",\"parent_type\":", ",\"parent_id\":",
    ",\"changes\":", ",\"reason\":", ",\"context\":", ",\"db_identity\":",
};
/* Per body field: 0 text or jsonb, 1 timestamp; whether it may be null; whether escapes are refused (tenant_id). */
static const uint8_t FIELD_TIMESTAMP[19] = {0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t FIELD_NULLABLE[19] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0};
static size_t KEY_LENGTH[19];

/* The position after `t` if the bytes at p are `t`, else NULL. */
static const uint8_t *token(const uint8_t *p, const uint8_t *end, const char *t, size_t n) {
  if ((size_t)(end - p) < n || memcmp(p, t, n) != 0) return NULL;
  return p + n;
}

/* The end of 1 to `max` ASCII digits at p followed by more of the line, or NULL. */
static const uint8_t *integer_end(const uint8_t *p, const uint8_t *end, int max) {
  const uint8_t *q = p;
  while (q < end && *q >= '0' && *q <= '9') q++;
  return q == p || q - p > max || q >= end ? NULL : q;
}

static int64_t digits_value(const uint8_t *p, const uint8_t *end) {
  int64_t v = 0;
  for (; p < end; p++) v = v * 10 + (*p - '0');
  return v;
}

/*
 * The high bit of each byte of the little-endian word w that is '"', '\\'
 * or below 0x20 (0 when none is). The classic tests ("has a zero byte",
 * "has a byte less than n"): a borrow may flag a byte after a flagged one,
 * never one before it, so the lowest flagged byte is exactly the first.
 */
static uint64_t special_bytes(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t quote = w ^ (ones * 0x22), backslash = w ^ (ones * 0x5c);
  return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | ((w - ones * 0x20) & ~w)) & highs;
}

static int hex4(const uint8_t *p, const uint8_t *end) {
  if (end - p < 4) return -1;
  int a = ANY_HEX[p[0]], b = ANY_HEX[p[1]], c = ANY_HEX[p[2]], d = ANY_HEX[p[3]];
  if ((a | b | c | d) < 0) return -1;
  return (a << 12) | (b << 8) | (c << 4) | d;
}

/*
 * A JSON string (or null when allowed) at p as a field at *o: its length,
 * then its UTF-8 bytes. Returns the position after it, NULL when not the
 * writer's layout (as JsonlLineDecoder.string()).
 */
static const uint8_t *string_field(const uint8_t *p, const uint8_t *end, int nullable, int no_escapes, uint8_t **o) {
  uint8_t *out = *o;
  if (p >= end) return NULL;
  if (*p != '"') {
    if (!nullable || end - p < 4 || memcmp(p, "null", 4) != 0) return NULL;
    put32be(out, 0xffffffffu);
    *o = out + 4;
    return p + 4;
  }
  p++;
  uint8_t *length_at = out;
  out += 4;
  for (;;) {
    /* Eight bytes at a time up to the first '"', '\\' or control character (most of a line is plain text). */
    while (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      memcpy(out, &w, 8); /* (the body has room: see reserve() in jsonl_decode()) */
      uint64_t special = special_bytes(w);
      if (special != 0) {
        int plain = __builtin_ctzll(special) >> 3;
        p += plain;
        out += plain;
        break;
      }
      p += 8;
      out += 8;
    }
    /* The line's newline (at end) is a control character: every scan stops there. */
    uint8_t c = *p;
    while (c >= 0x20 && c != '"' && c != '\\') {
      *out++ = c;
      c = *++p;
    }
    if (c == '"') break;
    if (c != '\\' || no_escapes || p + 1 >= end) return NULL;
    uint8_t e = p[1];
    p += 2;
    switch (e) {
      case '"': case '\\': case '/': *out++ = e; continue;
      case 'b': *out++ = 0x08; continue;
      case 'f': *out++ = 0x0c; continue;
      case 'n': *out++ = 0x0a; continue;
      case 'r': *out++ = 0x0d; continue;
      case 't': *out++ = 0x09; continue;
      case 'u': {
        int u = hex4(p, end);
        if (u < 0) return NULL;
        p += 4;
        uint32_t cp = (uint32_t)u;
        if (u >= 0xd800 && u <= 0xdbff) {
          int low = end - p >= 2 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2, end) : -1;
          if (low < 0xdc00 || low > 0xdfff) return NULL; /* a lone surrogate: not text */
          cp = 0x10000 + (((uint32_t)u - 0xd800) << 10) + ((uint32_t)low - 0xdc00);
          p += 6;
        } else if (u >= 0xdc00 && u <= 0xdfff) {
          return NULL;
        }
        if (cp < 0x80) {
          *out++ = (uint8_t)cp;
        } else if (cp < 0x800) {
          *out++ = (uint8_t)(0xc0 | (cp >> 6));
          *out++ = (uint8_t)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
          *out++ = (uint8_t)(0xe0 | (cp >> 12));
          *out++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
          *out++ = (uint8_t)(0x80 | (cp & 0x3f));
        } else {
          *out++ = (uint8_t)(0xf0 | (cp >> 18));
          *out++ = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
          *out++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
          *out++ = (uint8_t)(0x80 | (cp & 0x3f));
        }
        continue;
      }
      default:
        return NULL;
    }
  }
  put32be(length_at, (uint32_t)(out - length_at - 4));
  *o = out;
  return p + 1;
}

static int is_leap(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

static int days_in_month(int64_t y, int m) {
  if (m == 2) return is_leap(y) ? 29 : 28;
  return m == 4 || m == 6 || m == 9 || m == 11 ? 30 : 31;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil), for years 0 to 9999. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/*
 * A timestamp "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" (years 0000 to 9999, a date
 * that exists) at p as a field: length 8 and int64 microseconds big-endian.
 * Expanded years are not this layout (the TypeScript path reads them).
 */
static const uint8_t *timestamp_field(const uint8_t *p, const uint8_t *end, uint8_t **o) {
  const uint8_t *s = p + 1;
  if (end - s < 21 || *p != '"') return NULL;
  for (int i = 0; i < 19; i++) {
    uint8_t c = s[i];
    int ok = i == 4 || i == 7 ? c == '-' : i == 10 ? c == 'T' : i == 13 || i == 16 ? c == ':' : c >= '0' && c <= '9';
    if (!ok) return NULL;
  }
#define N2(i) ((s[i] - '0') * 10 + (s[(i) + 1] - '0'))
  int64_t year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + N2(2);
  int month = N2(5), day = N2(8), hour = N2(11), minute = N2(14), second = N2(17);
#undef N2
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59) return NULL;
  const uint8_t *q = s + 19;
  int64_t fraction = 0;
  int digits = 0;
  if (*q == '.') {
    q++;
    while (digits < 6 && q < end && *q >= '0' && *q <= '9') {
      fraction = fraction * 10 + (*q - '0');
      digits++;
      q++;
    }
    if (digits == 0) return NULL;
  }
  if (end - q < 2 || q[0] != 'Z' || q[1] != '"') return NULL;
  static const int64_t SCALE[7] = {1000000, 100000, 10000, 1000, 100, 10, 1};
  int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  int64_t micros = seconds * 1000000 + fraction * SCALE[digits];
  put32be(*o, 8);
  put64be(*o + 4, (uint64_t)micros);
  *o += 12;
  return q + 2;
}

/*
 * One line data[start..nl) (nl: its newline) decoded into the message buffer
 * m; returns the body's length, or 0 when it is not the writer's layout.
 * seq, version, prev and record receive the line's chain fields.
 */
static size_t jsonl_line(const uint8_t *p, const uint8_t *end, const uint8_t *tenant, size_t tenant_length, int tenant_ok, uint8_t *m,
                         int64_t *seq, double *version, uint8_t *prev, uint8_t *record) {
  p = token(p, end, "{\"sequence_no\":", 15);
  if (p == NULL) return 0;
  const uint8_t *q = integer_end(p, end, 15);
  if (q == NULL || *p == '0') return 0; /* sequence_no >= 1, no leading zeros */
  *seq = digits_value(p, q);
  p = q;
  memcpy(m, BODY_PREFIX, 6);
  uint8_t *o = m + 6;
  for (int f = 0; f < 19; f++) {
    p = token(p, end, KEYS[f], KEY_LENGTH[f]);
    if (p == NULL) return 0;
    uint8_t *field = o;
    p = FIELD_TIMESTAMP[f] ? timestamp_field(p, end, &o) : string_field(p, end, FIELD_NULLABLE[f], f == 1, &o);
    if (p == NULL) return 0;
    /* Another tenant's event (or a tenant id these bytes cannot stand for): the TypeScript path names it. */
    if (f == 1 && (!tenant_ok || (size_t)(o - field - 4) != tenant_length || (tenant_length > 0 && memcmp(field + 4, tenant, tenant_length) != 0))) return 0;
  }
  p = token(p, end, ",\"encoding_version\":", 20);
  if (p == NULL) return 0;
  q = integer_end(p, end, 9);
  if (q == NULL || (*p == '0' && q > p + 1)) return 0;
  *version = (double)digits_value(p, q);
  p = token(q, end, ",\"prev_hash\":", 13);
  if (p == NULL || end - p < 66 || p[0] != '"' || p[65] != '"' || !hex32(p + 1, prev)) return 0;
  p = token(p + 66, end, ",\"record_hash\":", 15);
  if (p == NULL || end - p < 66 || p[0] != '"' || p[65] != '"' || !hex32(p + 1, record)) return 0;
  p += 66;
  if (p + 1 != end || *p != '}') return 0;
  return (size_t)(o - m);
}

/* A run of whole lines one thread decodes: [p, stop), the first of them at result index `first`. */
typedef struct {
  const uint8_t *p, *stop;
  size_t first, lines;
  const uint8_t *tenant;
  size_t tenant_length;
  int tenant_ok;
  Results *r;
  /* Out: lines decoded from the first on (lines when all were), 0 with `failed` when memory ran out. */
  size_t taken;
} JsonlPart;

static void *jsonl_part(void *arg) {
  JsonlPart *part = arg;
  Scratch s = {NULL, 0};
  const uint8_t *p = part->p;
  size_t i = part->first;
  uint8_t prev[32], record[32];
  part->taken = 0;
  while (part->taken < part->lines) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(part->stop - p));
    /* A body is never longer than its line (each key is longer than the length that replaces it, escapes
       only shrink, a timestamp of 22 or more characters becomes 12 bytes); the chain position adds 48, the
       eight-byte copies of string_field() may write 7 bytes past a field's end. */
    if (nl == NULL || !reserve(&s, (size_t)(nl - p) + 64 + 48 + 8)) break;
    int64_t seq;
    double version;
    size_t n = jsonl_line(p, nl, part->tenant, part->tenant_length, part->tenant_ok, s.data, &seq, &version, prev, record);
    if (n == 0) break;
    n = chain_position(s.data, n, seq, prev);
    store(part->r, i, seq, version, s.data, n, prev, record);
    i++;
    part->taken++;
    p = nl + 1;
  }
  free(s.data);
  return NULL;
}

/* The start of the first line at or after q (a line starts after a newline), within [from, stop]. */
static const uint8_t *line_start_at(const uint8_t *from, const uint8_t *q, const uint8_t *stop) {
  if (q <= from) return from;
  const uint8_t *nl = memchr(q - 1, '\n', (size_t)(stop - (q - 1)));
  return nl == NULL ? stop : nl + 1;
}

static size_t count_lines(const uint8_t *p, const uint8_t *stop) {
  size_t n = 0;
  while (p < stop) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(stop - p));
    if (nl == NULL) break;
    n++;
    p = nl + 1;
  }
  return n;
}

/*
 * jsonlDecode(data, start, end, tenant, tenantOk, seq, version, hashes, same, at, state, threads)
 *
 * Decodes the lines of data[start..end) (whole lines, each ending with its
 * newline; valid UTF-8, which the caller checked) into the results from
 * index `at` on, until a line is not one it takes, the results are full or
 * the lines end; on up to `threads` threads, each a run of the lines, the
 * results the same as one thread's. state[0] receives the position of the
 * first line not decoded (end when all were), state[1] how many were.
 */
static napi_value jsonl_decode(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Typed data, tenant, state;
  int64_t start, end, at, threads;
  bool tenant_ok;
  Results r;
  if (argc != 12 || !typed_arg(env, argv[0], napi_uint8_array, &data) || !int_arg(env, argv[1], &start) || !int_arg(env, argv[2], &end) ||
      !typed_arg(env, argv[3], napi_uint8_array, &tenant) || napi_get_value_bool(env, argv[4], &tenant_ok) != napi_ok ||
      !results_args(env, argv + 5, &r) || !int_arg(env, argv[9], &at) || !typed_arg(env, argv[10], napi_float64_array, &state) ||
      !int_arg(env, argv[11], &threads) || state.length < 2 || start < 0 || end < start || (uint64_t)end > (uint64_t)data.length || at < 0 || threads < 1) {
    napi_throw_error(env, NULL, "verify_native.jsonlDecode: bad arguments");
    return NULL;
  }
  const uint8_t *from = data.data + start;
  const uint8_t *stop = data.data + end;
  /* The lines that fit in the results. */
  size_t room = (size_t)at < r.capacity ? r.capacity - (size_t)at : 0;
  const uint8_t *limit = from;
  size_t lines = 0;
  while (limit < stop && lines < room) {
    const uint8_t *nl = memchr(limit, '\n', (size_t)(stop - limit));
    if (nl == NULL) break;
    limit = nl + 1;
    lines++;
  }
  /* Runs of about equal bytes at line boundaries (a thread for fewer than 64 lines is not worth starting). */
  int n = threads > MAX_THREADS ? MAX_THREADS : (int)threads;
  if ((size_t)n > lines / 64) n = lines / 64 > 0 ? (int)(lines / 64) : 1;
  JsonlPart parts[MAX_THREADS];
  size_t first = (size_t)at;
  for (int k = 0; k < n; k++) {
    const uint8_t *p = k == 0 ? from : parts[k - 1].stop;
    const uint8_t *q = k == n - 1 ? limit : line_start_at(from, from + (size_t)(limit - from) * (size_t)(k + 1) / (size_t)n, limit);
    if (q < p) q = p;
    parts[k] = (JsonlPart){p, q, first, count_lines(p, q), tenant.data, tenant.length, tenant_ok, &r, 0};
    first += parts[k].lines;
  }
  run_parts(jsonl_part, parts, sizeof parts[0], n);
  /* The lines decoded from the first on: every run up to the first that stopped early. */
  size_t done = 0;
  const uint8_t *next = from;
  for (int k = 0; k < n; k++) {
    done += parts[k].taken;
    if (parts[k].taken < parts[k].lines) {
      next = parts[k].p;
      for (size_t t = 0; t < parts[k].taken; t++) next = (const uint8_t *)memchr(next, '\n', (size_t)(stop - next)) + 1;
      break;
    }
    next = parts[k].stop;
  }
  double *st = (double *)state.data;
  st[0] = (double)(next - data.data);
  st[1] = (double)done;
  return NULL;
}

/* ---------------------------------------------------------------- Parquet */

/* The export's 23 columns (src/export/columns.ts): sequence_no, the 19 body fields, encoding_version, prev_hash, record_hash. */
#define COLUMNS 23
#define C_SEQ 0
#define C_FIRST_BODY 1
#define C_LAST_BODY 19
#define C_OCCURRED 3
#define C_INGESTED 4
#define C_VERSION 20
#define C_PREV 21
#define C_RECORD 22

static uint64_t get64le(const uint8_t *p) {
  uint64_t v = 0;
  for (int k = 7; k >= 0; k--) v = (v << 8) | p[k];
  return v;
}

/* Rows [from, to) of a decoded row group turned into results (row `from` at result index `first`) by threads taking runs of PARQUET_RUN rows. */
#define PARQUET_RUN 256
#define MAX_RUNS 4096
typedef struct {
  const uint8_t *b;
  int64_t size;
  const int32_t *const *start;
  const int32_t *const *length;
  int64_t from, to;
  size_t first;
  const uint8_t *tenant;
  size_t tenant_length;
  int tenant_ok;
  Results *r;
  int next;     /* the next run to take */
  int runs;
  int stop_run; /* the first run known to stop before its end (runs after it are not worth hashing: the caller calls again after that row) */
  /* Out, per run: the first row not taken (the run's end when all were). */
  int64_t stopped[MAX_RUNS];
} ParquetJob;

/* Rows [from, to) of the job into results; the first row not taken (to when all were). */
static int64_t parquet_run(const ParquetJob *part, Scratch *scratch, int64_t from, int64_t to) {
  const int32_t *const *start = part->start;
  const int32_t *const *length = part->length;
  const uint8_t *b = part->b;
  Scratch s = *scratch;
  size_t i = part->first + (size_t)(from - part->from);
  int64_t row = from;
  uint8_t prev[32], record[32];
  for (; row < to; row++, i++) {
    /* The column arrays are read row by row, 46 streams at once: fetched ahead, a cache line (16 rows) at a time. */
    if ((row & 15) == 0 && row + 32 < to) {
      for (int c = 0; c < COLUMNS; c++) {
        __builtin_prefetch(&start[c][row + 32]);
        __builtin_prefetch(&length[c][row + 32]);
      }
    }
    if (length[C_SEQ][row] != 8 || length[C_OCCURRED][row] != 8 || length[C_INGESTED][row] != 8 || length[C_VERSION][row] != 4 ||
        length[C_PREV][row] != 64 || length[C_RECORD][row] != 64) {
      break;
    }
    /* Every value must lie inside the decoded bytes (a row with one that does not is declined, never read). */
    size_t room = 6 + 48;
    int inside = 1;
    for (int c = 0; c < COLUMNS; c++) {
      int32_t n = length[c][row], at = start[c][row];
      if (n < 0) continue;
      /* (text: deliverDecodedRows() copies it four bytes at a time, so it must end four-byte-rounded inside too) */
      int text = c >= C_FIRST_BODY && c <= C_LAST_BODY && c != C_OCCURRED && c != C_INGESTED;
      if (at < 0 || (int64_t)at + (text ? (((int64_t)n + 3) & ~(int64_t)3) : n) > part->size) inside = 0;
      room += 4 + (size_t)n;
    }
    if (!inside || !reserve(&s, room)) break;
    if (!hex32(b + start[C_PREV][row], prev) || !hex32(b + start[C_RECORD][row], record)) break;
    /* The tenant: another's (or one these bytes cannot stand for) goes to deliverDecodedGroup(). */
    int32_t tn = length[2][row];
    if (!part->tenant_ok || tn < 0 || (size_t)tn != part->tenant_length || (part->tenant_length > 0 && memcmp(b + start[2][row], part->tenant, part->tenant_length) != 0)) break;
    uint8_t *m = s.data;
    memcpy(m, BODY_PREFIX, 6);
    uint8_t *o = m + 6;
    for (int c = C_FIRST_BODY; c <= C_LAST_BODY; c++) {
      int32_t n = length[c][row];
      if (n < 0) {
        put32be(o, 0xffffffffu);
        o += 4;
        continue;
      }
      put32be(o, (uint32_t)n);
      o += 4;
      const uint8_t *v = b + start[c][row];
      if (c == C_OCCURRED || c == C_INGESTED) {
        put64be(o, get64le(v));
      } else {
        memcpy(o, v, (size_t)n);
      }
      o += n;
    }
    int64_t seq = (int64_t)get64le(b + start[C_SEQ][row]);
    const uint8_t *vb = b + start[C_VERSION][row];
    int32_t version = (int32_t)((uint32_t)vb[0] | (uint32_t)vb[1] << 8 | (uint32_t)vb[2] << 16 | (uint32_t)vb[3] << 24);
    size_t n = chain_position(m, (size_t)(o - m), seq, prev);
    store(part->r, i, seq, (double)version, m, n, prev, record);
  }
  *scratch = s;
  return row;
}

static void *parquet_worker(void *arg) {
  ParquetJob *job = *(ParquetJob **)arg;
  Scratch s = {NULL, 0};
  for (;;) {
    int k = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
    if (k >= job->runs) break;
    int64_t a = job->from + (int64_t)k * PARQUET_RUN, z = a + PARQUET_RUN < job->to ? a + PARQUET_RUN : job->to;
    if (k > __atomic_load_n(&job->stop_run, __ATOMIC_RELAXED)) {
      job->stopped[k] = a;
      continue;
    }
    job->stopped[k] = parquet_run(job, &s, a, z);
    if (job->stopped[k] < z) {
      int seen = __atomic_load_n(&job->stop_run, __ATOMIC_RELAXED);
      while (k < seen && !__atomic_compare_exchange_n(&job->stop_run, &seen, k, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      }
    }
  }
  free(s.data);
  return NULL;
}

/*
 * parquetRows(bytes, starts, lengths, from, to, tenant, tenantOk, seq, version, hashes, same, at, state, threads)
 *
 * The rows from..to of a row group decoded by parquet_decode.ts (bytes, and
 * per column its values' offsets and lengths) into the results from index
 * `at` on, until a row is not one it takes (a malformed INT64 or hash,
 * another tenant: deliverDecodedGroup() decides those), the results are
 * full or the rows end; on up to `threads` threads, each a run of the rows,
 * the results the same as one thread's. state[0] receives the first row not
 * decoded.
 */
static napi_value parquet_rows(napi_env env, napi_callback_info info) {
  size_t argc = 14;
  napi_value argv[14];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Typed bytes, tenant, state;
  int64_t from, to, at, threads;
  bool tenant_ok;
  Results r;
  uint32_t nstarts = 0, nlengths = 0;
  /* The column arrays' elements first: reading an element may run JavaScript (a getter), which must not
     run after any pointer into an array buffer is taken. */
  napi_value sv[COLUMNS], lv[COLUMNS];
  if (argc != 14 || napi_get_array_length(env, argv[1], &nstarts) != napi_ok || napi_get_array_length(env, argv[2], &nlengths) != napi_ok ||
      nstarts != COLUMNS || nlengths != COLUMNS) {
    napi_throw_error(env, NULL, "verify_native.parquetRows: bad arguments");
    return NULL;
  }
  for (uint32_t c = 0; c < COLUMNS; c++) {
    if (napi_get_element(env, argv[1], c, &sv[c]) != napi_ok || napi_get_element(env, argv[2], c, &lv[c]) != napi_ok) {
      napi_throw_error(env, NULL, "verify_native.parquetRows: bad column arrays");
      return NULL;
    }
  }
  if (!typed_arg(env, argv[0], napi_uint8_array, &bytes) || !int_arg(env, argv[3], &from) || !int_arg(env, argv[4], &to) ||
      !typed_arg(env, argv[5], napi_uint8_array, &tenant) || napi_get_value_bool(env, argv[6], &tenant_ok) != napi_ok || !results_args(env, argv + 7, &r) ||
      !int_arg(env, argv[11], &at) || !typed_arg(env, argv[12], napi_float64_array, &state) || !int_arg(env, argv[13], &threads) || state.length < 1 ||
      from < 0 || to < from || at < 0 || threads < 1) {
    napi_throw_error(env, NULL, "verify_native.parquetRows: bad arguments");
    return NULL;
  }
  const int32_t *start[COLUMNS];
  const int32_t *length[COLUMNS];
  for (uint32_t c = 0; c < COLUMNS; c++) {
    Typed st, ln;
    if (!typed_arg(env, sv[c], napi_int32_array, &st) || !typed_arg(env, lv[c], napi_int32_array, &ln) || (uint64_t)st.length < (uint64_t)to ||
        (uint64_t)ln.length < (uint64_t)to) {
      napi_throw_error(env, NULL, "verify_native.parquetRows: bad column arrays");
      return NULL;
    }
    start[c] = (const int32_t *)st.data;
    length[c] = (const int32_t *)ln.data;
  }
  /* The rows that fit in the results, in runs the threads take one after another (a thread that is held up, by
     the file's digest on the same core, takes fewer): the results are one thread's whatever the order. */
  size_t room = (size_t)at < r.capacity ? r.capacity - (size_t)at : 0;
  if ((uint64_t)(to - from) > room) to = from + (int64_t)room;
  if (to - from > (int64_t)MAX_RUNS * PARQUET_RUN) to = from + (int64_t)MAX_RUNS * PARQUET_RUN; /* (the caller calls again from where this ends) */
  ParquetJob *job = malloc(sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, NULL, "verify_native.parquetRows: out of memory");
    return NULL;
  }
  *job = (ParquetJob){bytes.data, (int64_t)bytes.length, start, length, from, to, (size_t)at, tenant.data, tenant.length, tenant_ok, &r, 0, 0, INT32_MAX, {0}};
  job->runs = (int)((to - from + PARQUET_RUN - 1) / PARQUET_RUN);
  int n = threads > MAX_THREADS ? MAX_THREADS : (int)threads;
  if (n > job->runs) n = job->runs > 0 ? job->runs : 1;
  ParquetJob *parts[MAX_THREADS];
  for (int k = 0; k < n; k++) parts[k] = job;
  run_parts(parquet_worker, parts, sizeof parts[0], n);
  int64_t row = to;
  for (int k = 0; k < job->runs; k++) {
    int64_t end = from + (int64_t)(k + 1) * PARQUET_RUN < to ? from + (int64_t)(k + 1) * PARQUET_RUN : to;
    if (job->stopped[k] < end) {
      row = job->stopped[k];
      break;
    }
  }
  free(job);
  ((double *)state.data)[0] = (double)row;
  return NULL;
}

/* --------------------------------------------------- Parquet page values */

/*
 * The per-value loops of parquet_decode.ts's decodeColumn(), each exactly
 * as the TypeScript function of the same name: it returns false (or -1)
 * wherever that would throw, and the caller then runs the TypeScript, which
 * throws its error. The page headers and every check of them stay in
 * TypeScript.
 */

/* An Int32Array argument with at least `need` elements from `from` on, or NULL. */
static int32_t *int32s(napi_env env, napi_value v, int64_t from, int64_t need) {
  Typed t;
  if (!typed_arg(env, v, napi_int32_array, &t) || from < 0 || need < 0 || (uint64_t)from > t.length || (uint64_t)need > t.length - (uint64_t)from) return NULL;
  return (int32_t *)t.data + from;
}

static napi_value boolean(napi_env env, int ok) {
  napi_value result;
  if (napi_get_boolean(env, ok, &result) != napi_ok) return NULL;
  return result;
}

/*
 * As readPlain(): the offsets and lengths of `count` PLAIN values in
 * b[pos..end) (width 8 INT64, 4 INT32, 0 BYTE_ARRAY with its 4-byte
 * length); 1 when they fill it exactly, 0 where readPlain() throws.
 */
static int plain_values(const uint8_t *b, int64_t pos, int64_t end, int64_t width, int64_t count, int32_t *start, int32_t *length) {
  for (int64_t k = 0; k < count; k++) {
    int64_t n = width;
    if (width == 0) {
      if (pos + 4 > end) return 0;
      n = (int64_t)((uint32_t)b[pos] | (uint32_t)b[pos + 1] << 8 | (uint32_t)b[pos + 2] << 16 | (uint32_t)b[pos + 3] << 24);
      pos += 4;
    }
    if (n > end - pos) return 0;
    start[k] = (int32_t)pos;
    length[k] = (int32_t)n;
    pos += n;
  }
  return pos == end;
}

/* readPlain(bytes, pos, end, width, count, start, length, firstSlot): plain_values() into start/length from firstSlot on. */
static napi_value read_plain(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Typed bytes;
  int64_t pos, end, width, count, first;
  if (argc != 8 || !typed_arg(env, argv[0], napi_uint8_array, &bytes) || !int_arg(env, argv[1], &pos) || !int_arg(env, argv[2], &end) ||
      !int_arg(env, argv[3], &width) || !int_arg(env, argv[4], &count) || !int_arg(env, argv[7], &first)) {
    napi_throw_error(env, NULL, "verify_native.readPlain: bad arguments");
    return NULL;
  }
  int32_t *start = int32s(env, argv[5], first, count), *length = int32s(env, argv[6], first, count);
  if (start == NULL || length == NULL || pos < 0 || end < pos || (uint64_t)end > bytes.length || (width != 0 && width != 4 && width != 8)) return boolean(env, 0);
  return boolean(env, plain_values(bytes.data, pos, end, width, count, start, length));
}

/*
 * As readHybrid(): `count` values of the RLE/bit-packed hybrid encoding of
 * `width` bits in b[pos..end) into out; the position after the runs read,
 * or -1 where readHybrid() throws. Reads nothing at or past b[end].
 */
static int64_t hybrid_values(const uint8_t *b, int64_t pos, int64_t end, int64_t width, int32_t *out, int64_t count) {
  if (width < 0 || width > 32) return -1;
  const int byte_width = (int)((width + 7) / 8);
  const uint64_t mask = width == 32 ? 0xffffffffu : ((uint64_t)1 << width) - 1;
  int64_t n = 0;
  while (n < count) {
    uint64_t header = 0;
    int shift = 0;
    for (;;) {
      if (pos >= end) return -1;
      uint8_t c = b[pos++];
      header += (uint64_t)(c & 0x7f) << shift;
      if (c < 0x80) break;
      shift += 7;
      if (shift > 28) return -1;
    }
    if (header % 2 == 0) {
      uint64_t run = header / 2;
      if (pos + byte_width > end) return -1;
      uint32_t value = 0;
      for (int k = 0; k < byte_width; k++) value |= (uint32_t)b[pos + k] << (8 * k);
      pos += byte_width;
      if (run == 0) return -1;
      int64_t to = (uint64_t)(count - n) < run ? count : n + (int64_t)run;
      for (; n < to; n++) out[n] = (int32_t)value;
    } else {
      uint64_t values = (header - 1) / 2 * 8;
      uint64_t nbytes = values * (uint64_t)width / 8;
      if ((uint64_t)(end - pos) < nbytes) return -1;
      int64_t to = (uint64_t)(count - n) < values ? count : n + (int64_t)values;
      uint64_t bit = (uint64_t)pos * 8;
      for (; n < to; n++) {
        /* width bits from bit on, least significant first (at most 32 bits: five bytes) */
        uint64_t at = bit >> 3, w = 0;
        for (int k = 0; k < 5 && at + (uint64_t)k < (uint64_t)end; k++) w |= (uint64_t)b[at + (uint64_t)k] << (8 * k);
        out[n] = (int32_t)(uint32_t)((w >> (bit & 7)) & mask);
        bit += (uint64_t)width;
      }
      pos += (int64_t)nbytes;
    }
  }
  return pos;
}

/* readHybrid(bytes, pos, end, bitWidth, out, count): hybrid_values() of bytes, -1 for arguments it cannot take. */
static napi_value read_hybrid(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Typed bytes;
  int64_t pos, end, width, count;
  if (argc != 6 || !typed_arg(env, argv[0], napi_uint8_array, &bytes) || !int_arg(env, argv[1], &pos) || !int_arg(env, argv[2], &end) ||
      !int_arg(env, argv[3], &width) || !int_arg(env, argv[5], &count)) {
    napi_throw_error(env, NULL, "verify_native.readHybrid: bad arguments");
    return NULL;
  }
  int32_t *out = int32s(env, argv[4], 0, count);
  int64_t at = out == NULL || pos < 0 || end < pos || (uint64_t)end > bytes.length ? -1 : hybrid_values(bytes.data, pos, end, width, out, count);
  napi_value result;
  CHECK(napi_create_int64(env, at, &result));
  return result;
}

/* How many of the definition levels are 1; -1 if one is above 1 (decodeColumn() throws). */
static int64_t defined_levels(const int32_t *levels, int64_t count) {
  int64_t defined = 0;
  for (int64_t k = 0; k < count; k++) {
    if ((uint32_t)levels[k] > 1) return -1;
    defined += levels[k];
  }
  return defined;
}

/* definedCount(levels, count): defined_levels(). */
static napi_value defined_count(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t count;
  if (argc != 2 || !int_arg(env, argv[1], &count)) {
    napi_throw_error(env, NULL, "verify_native.definedCount: bad arguments");
    return NULL;
  }
  const int32_t *levels = int32s(env, argv[0], 0, count);
  napi_value result;
  CHECK(napi_create_int64(env, levels == NULL ? -1 : defined_levels(levels, count), &result));
  return result;
}

/*
 * The values of a page spread over its `count` rows: where levels (NULL: a
 * REQUIRED column, every row) is 1 the next value, else NULL (offset 0,
 * length -1). The next value is vs/vl[v], or, with `indexes`, the
 * dictionary's entry indexes[v]. 0 when one is outside the dictionary (of
 * `size` entries), or a value or an index is read beyond the `available`
 * ones.
 */
static int spread(const int32_t *levels, int64_t count, const int32_t *vs, const int32_t *vl, size_t values_available, const int32_t *indexes,
                  size_t indexes_available, int64_t size, int32_t *start, int32_t *length) {
  size_t v = 0;
  for (int64_t k = 0; k < count; k++) {
    if (levels == NULL || levels[k] == 1) {
      int64_t i;
      if (indexes != NULL) {
        if (v >= indexes_available) return 0;
        i = indexes[v++];
        if (i < 0 || i >= size || (size_t)i >= values_available) return 0;
      } else {
        if (v >= values_available) return 0;
        i = (int64_t)v++;
      }
      start[k] = vs[i];
      length[k] = vl[i];
    } else {
      start[k] = 0;
      length[k] = -1;
    }
  }
  return 1;
}

/*
 * spreadValues(levels, count, valueStart, valueLength, indexes, dictionarySize, start, length, done):
 * spread() of a page's values over its rows from `done` on (levels, indexes: null for none);
 * false where decodeColumn() throws.
 */
static napi_value spread_values(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t count, size, done;
  napi_valuetype lt, it;
  if (argc != 9 || !int_arg(env, argv[1], &count) || !int_arg(env, argv[5], &size) || !int_arg(env, argv[8], &done) ||
      napi_typeof(env, argv[0], &lt) != napi_ok || napi_typeof(env, argv[4], &it) != napi_ok) {
    napi_throw_error(env, NULL, "verify_native.spreadValues: bad arguments");
    return NULL;
  }
  const int32_t *levels = lt == napi_null ? NULL : int32s(env, argv[0], 0, count);
  const int32_t *indexes = it == napi_null ? NULL : int32s(env, argv[4], 0, 0);
  const int32_t *vs = int32s(env, argv[2], 0, indexes == NULL ? 0 : size), *vl = int32s(env, argv[3], 0, indexes == NULL ? 0 : size);
  int32_t *start = int32s(env, argv[6], done, count), *length = int32s(env, argv[7], done, count);
  if ((lt != napi_null && levels == NULL) || (it != napi_null && indexes == NULL) || vs == NULL || vl == NULL || start == NULL || length == NULL) return boolean(env, 0);
  /* The arrays' own lengths bound every read: values read must exist. */
  Typed tv, tl, ti;
  if (!typed_arg(env, argv[2], napi_int32_array, &tv) || !typed_arg(env, argv[3], napi_int32_array, &tl)) return boolean(env, 0);
  size_t values_available = tv.length < tl.length ? tv.length : tl.length;
  size_t indexes_available = 0;
  if (indexes != NULL) {
    if (!typed_arg(env, argv[4], napi_int32_array, &ti)) return boolean(env, 0);
    indexes_available = ti.length;
  }
  return boolean(env, spread(levels, count, vs, vl, values_available, indexes, indexes_available, size, start, length));
}

/* ----------------------------------------------------------------- Snappy */

/* Bytes snappyDecompressInto() asks for after the output (its word copies; snappy.ts SPARE): the same here, so as not to accept more. */
#define SNAPPY_SPARE 8

/*
 * As snappyDecompressInto() where it accepts: 1 when p[0..pe) is a Snappy
 * block of exactly out_length bytes, now at o0 (which has SNAPPY_SPARE
 * bytes to spare after them, as snappyDecompressInto() asks), else 0 (the
 * TypeScript decides what a damaged stream is).
 */
static int snappy_block(const uint8_t *p, const uint8_t *pe, uint8_t *o0, size_t out_length) {
  uint8_t *o = o0, *oe = o0 + out_length;
  int ok = 0;
  /* The preamble: the uncompressed length, a varint (stricter than snappyDecompressInto(): it must be outputLength). */
  uint64_t declared = 0;
  int shift = 0;
  for (;;) {
    if (p >= pe || shift > 28) goto done;
    uint8_t c = *p++;
    declared |= (uint64_t)(c & 0x7f) << shift;
    if (c < 0x80) break;
    shift += 7;
  }
  if (declared != (uint64_t)out_length) goto done;
  while (p < pe) {
    uint8_t tag = *p++;
    size_t len, offset;
    switch (tag & 3) {
      case 0: { /* literal */
        len = tag >> 2;
        if (len >= 60) {
          size_t extra = len - 59;
          /* (four bytes after the tag, whatever the length's size, as snappyDecompressInto() asks: never accept more than it does) */
          if (pe - p < 4) goto done;
          len = 0;
          for (size_t k = 0; k < extra; k++) len |= (size_t)p[k] << (8 * k);
          p += extra;
        }
        len += 1;
        if ((size_t)(pe - p) < len || (size_t)(oe - o) < len) goto done;
        memcpy(o, p, len);
        o += len;
        p += len;
        continue;
      }
      case 1:
        if (pe - p < 1) goto done;
        len = ((tag >> 2) & 7) + 4;
        offset = ((size_t)(tag >> 5) << 8) | p[0];
        p += 1;
        break;
      case 2:
        if (pe - p < 2) goto done;
        len = (tag >> 2) + 1;
        offset = (size_t)p[0] | ((size_t)p[1] << 8);
        p += 2;
        break;
      default:
        if (pe - p < 4) goto done;
        len = (tag >> 2) + 1;
        offset = (size_t)p[0] | ((size_t)p[1] << 8) | ((size_t)p[2] << 16) | ((size_t)p[3] << 24);
        p += 4;
        break;
    }
    if (offset == 0 || offset > (size_t)(o - o0) || (size_t)(oe - o) < len) goto done;
    const uint8_t *from = o - offset;
    if (offset >= len) {
      memcpy(o, from, len);
      o += len;
    } else {
      for (size_t k = 0; k < len; k++) *o++ = from[k]; /* overlapping: a repeating pattern */
    }
  }
  ok = o == oe;
done:
  return ok;
}

/*
 * snappyDecompress(input, inputStart, inputEnd, output, outputStart, outputLength): 1 when
 * input[inputStart..inputEnd) is a Snappy block of exactly outputLength bytes, now
 * in output[outputStart..], else 0: snappy_block().
 */
static napi_value snappy_decompress(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Typed in, out;
  int64_t in_start, in_end, out_start, out_length;
  if (argc != 6 || !typed_arg(env, argv[0], napi_uint8_array, &in) || !int_arg(env, argv[1], &in_start) || !int_arg(env, argv[2], &in_end) ||
      !typed_arg(env, argv[3], napi_uint8_array, &out) || !int_arg(env, argv[4], &out_start) || !int_arg(env, argv[5], &out_length) || in_start < 0 ||
      in_end < in_start || (uint64_t)in_end > (uint64_t)in.length || out_start < 0 || out_length < 0 || (uint64_t)out_start > (uint64_t)out.length ||
      (uint64_t)out_length + SNAPPY_SPARE > (uint64_t)out.length - (uint64_t)out_start) {
    napi_throw_error(env, NULL, "verify_native.snappyDecompress: bad arguments");
    return NULL;
  }
  return boolean(env, snappy_block(in.data + in_start, in.data + in_end, out.data + out_start, (size_t)out_length));
}

/* ------------------------------------------------------ Parquet row group */

/*
 * A whole row group's pages decoded at once, the columns shared out among
 * threads: parquet_decode.ts's decodeColumn() for each column chunk, page
 * headers included, taking only what the writer writes. Any other page
 * header (another field, a long-form field id, a value beyond 32 bits), and
 * anything decodeColumn() would throw for, declines the whole group, which
 * decodeRowGroup() then decodes in TypeScript: that decides what such a
 * page is. What it takes it decodes to the values decodeColumn() gives.
 */

/* The page header fields decodeColumn() reads (-1: absent). */
typedef struct {
  int32_t type, uncompressed, compressed, dict_values, dict_encoding, values, nulls, rows, encoding, def_length, rep_length;
  int is_compressed, has_v2, has_dict;
  int64_t end; /* where the page's data starts */
} PageHeader;

/* A Thrift compact i32 at b[*pos..limit): a zigzag varint of at most five bytes whose value fits 32 bits. */
static int thrift_i32(const uint8_t *b, int64_t *pos, int64_t limit, int32_t *out) {
  uint64_t v = 0;
  for (int k = 0; k < 5; k++) {
    if (*pos >= limit) return 0;
    uint8_t c = b[(*pos)++];
    v |= (uint64_t)(c & 0x7f) << (7 * k);
    if (c < 0x80) {
      if (v > 0xffffffffu) return 0;
      *out = (int32_t)((uint32_t)(v >> 1) ^ (0u - (uint32_t)(v & 1)));
      return 1;
    }
  }
  return 0;
}

/*
 * The page header at b[pos..limit) as the writer writes it: PageHeader's
 * type (1), sizes (2, 3), dictionary_page_header (7: num_values, encoding,
 * is_sorted) or data_page_header_v2 (8: its counts and lengths 1-6,
 * is_compressed), short-form field ids only. 0 for anything else.
 */
static int page_header(const uint8_t *b, int64_t pos, int64_t limit, PageHeader *h) {
  *h = (PageHeader){-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 0, 0, 0};
  int id = 0;
  for (;;) {
    if (pos >= limit) return 0;
    uint8_t f = b[pos++];
    if (f == 0) break;
    int type = f & 15;
    if (f >> 4 == 0) return 0;
    id += f >> 4;
    if (id <= 3) {
      if (type != 5 || !thrift_i32(b, &pos, limit, id == 1 ? &h->type : id == 2 ? &h->uncompressed : &h->compressed)) return 0;
      continue;
    }
    if (type != 12 || (id != 7 && id != 8)) return 0;
    int sub = 0;
    for (;;) {
      if (pos >= limit) return 0;
      uint8_t g = b[pos++];
      if (g == 0) break;
      int t = g & 15;
      if (g >> 4 == 0) return 0;
      sub += g >> 4;
      int32_t *into;
      if (id == 7 && sub == 3 && (t == 1 || t == 2)) continue; /* is_sorted */
      if (id == 8 && sub == 7 && (t == 1 || t == 2)) {
        h->is_compressed = t == 1;
        continue;
      }
      if (id == 7 && sub <= 2) into = sub == 1 ? &h->dict_values : &h->dict_encoding;
      else if (id == 8 && sub <= 6) {
        int32_t *v2[6] = {&h->values, &h->nulls, &h->rows, &h->encoding, &h->def_length, &h->rep_length};
        into = v2[sub - 1];
      } else {
        return 0;
      }
      if (t != 5 || !thrift_i32(b, &pos, limit, into)) return 0;
    }
    if (id == 7) h->has_dict = 1;
    else h->has_v2 = 1;
  }
  h->end = pos;
  return h->uncompressed >= 0 && h->compressed >= 0;
}

/* One column chunk of the group: where it is in the file's bytes, what it holds, where its values go. */
typedef struct {
  int64_t chunk_start, chunk_end; /* in src */
  int64_t width;                  /* 8 INT64, 4 INT32, 0 BYTE_ARRAY */
  int optional, snappy;
  int64_t region_start, region_end; /* its part of the output bytes */
  int32_t *start, *length;          /* rows long */
} GroupColumn;

/* A growable Int32 scratch array. */
static int32_t *int32_room(int32_t **a, size_t *size, int64_t n) {
  if (n < 0) return NULL;
  if ((size_t)n <= *size && *a != NULL) return *a;
  size_t next = (size_t)n < 1024 ? 1024 : (size_t)n;
  int32_t *grown = realloc(*a, next * sizeof(int32_t));
  if (grown == NULL) return NULL;
  *a = grown;
  *size = next;
  return grown;
}

/* As pageValues(): a page's values src[from..from + compressed) at *o of out (within region_end); 0 where that throws. */
static int page_values(const uint8_t *src, int64_t from, int64_t compressed, int64_t uncompressed, int snappy, uint8_t *out, int64_t *o, int64_t region_end,
                       int64_t *at) {
  *at = *o;
  if (*o + uncompressed + SNAPPY_SPARE > region_end) return 0;
  if (uncompressed == 0) return 1;
  if (snappy) {
    if (!snappy_block(src + from, src + from + compressed, out + *o, (size_t)uncompressed)) return 0;
  } else {
    if (compressed != uncompressed) return 0;
    memcpy(out + *o, src + from, (size_t)compressed);
  }
  *o += uncompressed;
  return 1;
}

/* decodeColumn() of one column chunk: 1 when start/length hold its `rows` values, 0 where decodeColumn() throws or a page header is not the writer's. */
static int decode_chunk(const uint8_t *src, uint8_t *out, int64_t rows, const GroupColumn *col) {
  int64_t pos = col->chunk_start, end = col->chunk_end, o = col->region_start, done = 0;
  int32_t *dict = NULL, *levels = NULL, *tmp = NULL;
  size_t levels_size = 0, tmp_size = 0;
  int64_t dict_size = 0;
  int first = 1, ok = 0;
  const int64_t width = col->width;
  while (done < rows) {
    PageHeader h;
    if (!page_header(src, pos, end, &h)) goto out;
    pos = h.end;
    const int64_t data_end = pos + h.compressed;
    if (data_end > end) goto out;
    int64_t at;
    if (h.type == 2) { /* a dictionary page */
      if (!first || !h.has_dict || (h.dict_encoding != 0 && h.dict_encoding != 2) || h.dict_values < 0) goto out;
      if (!page_values(src, pos, h.compressed, h.uncompressed, col->snappy, out, &o, col->region_end, &at)) goto out;
      /* (a value takes at least four bytes, its length, or its width: more values cannot fill the page) */
      if ((int64_t)h.dict_values * (width == 0 ? 4 : width) > h.uncompressed) goto out;
      dict = malloc(2 * sizeof(int32_t) * ((size_t)h.dict_values + 1));
      if (dict == NULL || !plain_values(out, at, at + h.uncompressed, width, h.dict_values, dict, dict + h.dict_values)) goto out;
      dict_size = h.dict_values;
    } else if (h.type == 3 && h.has_v2) { /* a DATA_PAGE_V2 */
      if (h.rep_length != 0 || h.values < 0 || h.nulls < 0 || h.rows != h.values || h.values == 0 || h.rows > rows - done) goto out;
      if (h.def_length < 0 || h.def_length > h.compressed || h.def_length > h.uncompressed) goto out;
      const int64_t count = h.values, present = count - h.nulls;
      if (present < 0) goto out;
      if (col->optional) {
        if (int32_room(&levels, &levels_size, count) == NULL) goto out;
        if (hybrid_values(src, pos, pos + h.def_length, 1, levels, count) != pos + h.def_length || defined_levels(levels, count) != present) goto out;
      } else if (h.def_length != 0 || h.nulls != 0) {
        goto out;
      }
      const int64_t values_from = pos + h.def_length, values_size = h.uncompressed - h.def_length;
      if (!page_values(src, values_from, data_end - values_from, values_size, col->snappy && h.is_compressed, out, &o, col->region_end, &at)) goto out;
      const int64_t values_end = at + values_size;
      int32_t *start = col->start + done, *length = col->length + done;
      if (h.encoding == 0) { /* PLAIN */
        if (present == count) {
          if (!plain_values(out, at, values_end, width, count, start, length)) goto out;
        } else {
          if (int32_room(&tmp, &tmp_size, 2 * present) == NULL || !plain_values(out, at, values_end, width, present, tmp, tmp + present) ||
              !spread(levels, count, tmp, tmp + present, (size_t)present, NULL, 0, 0, start, length)) {
            goto out;
          }
        }
      } else if (h.encoding == 8 || h.encoding == 2) { /* RLE_DICTIONARY, PLAIN_DICTIONARY */
        if (dict == NULL || values_size < 1 || int32_room(&tmp, &tmp_size, present) == NULL) goto out;
        if (hybrid_values(out, at + 1, values_end, out[at], tmp, present) < 0) goto out;
        if (!spread(col->optional ? levels : NULL, count, dict, dict + dict_size, (size_t)dict_size, tmp, (size_t)present, dict_size, start, length)) goto out;
      } else {
        goto out;
      }
      done += count;
    } else {
      goto out;
    }
    first = 0;
    pos = data_end;
  }
  ok = 1;
out:
  free(dict);
  free(levels);
  free(tmp);
  return ok;
}

/* The columns of a group the threads take one by one (biggest first), and whether all decoded. */
typedef struct {
  const uint8_t *src;
  uint8_t *out;
  int64_t rows;
  GroupColumn *columns;
  int order[COLUMNS];
  int next;
  int failed;
} GroupJob;

static void *group_part(void *arg) {
  GroupJob *job = *(GroupJob **)arg;
  for (;;) {
    int k = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
    if (k >= COLUMNS || __atomic_load_n(&job->failed, __ATOMIC_RELAXED)) break;
    if (!decode_chunk(job->src, job->out, job->rows, &job->columns[job->order[k]])) __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

/*
 * parquetGroup(src, columns, rows, bytes, starts, lengths, threads): decodes
 * the 23 column chunks of a row group of `rows` rows in src (the file's
 * bytes as read) into bytes and, per column, the values' offsets and
 * lengths in it (starts[c], lengths[c], Int32Arrays of at least `rows`);
 * true when it took the whole group, false to leave it to decodeRowGroup()'s
 * TypeScript. `columns` (Float64Array, 7 per column): chunk start and end in
 * src, value width (8, 4, 0 for BYTE_ARRAY), OPTIONAL (1/0), SNAPPY (1/0),
 * and the column's part of bytes (start, end), parts in column order, not
 * overlapping.
 */
static napi_value parquet_group(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_value sv[COLUMNS], lv[COLUMNS];
  uint32_t nstarts = 0, nlengths = 0;
  /* The arrays' elements first (a getter may run JavaScript), then the pointers. */
  if (argc != 7 || napi_get_array_length(env, argv[4], &nstarts) != napi_ok || napi_get_array_length(env, argv[5], &nlengths) != napi_ok ||
      nstarts != COLUMNS || nlengths != COLUMNS) {
    napi_throw_error(env, NULL, "verify_native.parquetGroup: bad arguments");
    return NULL;
  }
  for (uint32_t c = 0; c < COLUMNS; c++) {
    if (napi_get_element(env, argv[4], c, &sv[c]) != napi_ok || napi_get_element(env, argv[5], c, &lv[c]) != napi_ok) {
      napi_throw_error(env, NULL, "verify_native.parquetGroup: bad column arrays");
      return NULL;
    }
  }
  Typed src, info7, bytes;
  int64_t rows, threads;
  if (!typed_arg(env, argv[0], napi_uint8_array, &src) || !typed_arg(env, argv[1], napi_float64_array, &info7) || !int_arg(env, argv[2], &rows) ||
      !typed_arg(env, argv[3], napi_uint8_array, &bytes) || !int_arg(env, argv[6], &threads) || info7.length != 7 * COLUMNS || rows < 0 || threads < 1 ||
      bytes.length > INT32_MAX) {
    napi_throw_error(env, NULL, "verify_native.parquetGroup: bad arguments");
    return NULL;
  }
  GroupColumn columns[COLUMNS];
  const double *d = (const double *)info7.data;
  int64_t previous_end = 0;
  for (int c = 0; c < COLUMNS; c++) {
    const double *v = d + 7 * c;
    /* (every number a whole one within the bytes: a double beyond them is refused before any cast) */
    for (int k = 0; k < 7; k++) {
      if (!(v[k] >= 0 && v[k] <= 9007199254740991.0) || v[k] != (double)(int64_t)v[k]) {
        napi_throw_error(env, NULL, "verify_native.parquetGroup: bad column description");
        return NULL;
      }
    }
    GroupColumn *col = &columns[c];
    *col = (GroupColumn){(int64_t)v[0], (int64_t)v[1], (int64_t)v[2], v[3] != 0, v[4] != 0, (int64_t)v[5], (int64_t)v[6], NULL, NULL};
    if (col->chunk_end < col->chunk_start || (uint64_t)col->chunk_end > src.length || (col->width != 0 && col->width != 4 && col->width != 8) || v[3] > 1 ||
        v[4] > 1 || col->region_start < previous_end || col->region_end < col->region_start || (uint64_t)col->region_end > bytes.length) {
      napi_throw_error(env, NULL, "verify_native.parquetGroup: bad column description");
      return NULL;
    }
    previous_end = col->region_end;
    Typed st, ln;
    if (!typed_arg(env, sv[c], napi_int32_array, &st) || !typed_arg(env, lv[c], napi_int32_array, &ln) || (uint64_t)st.length < (uint64_t)rows ||
        (uint64_t)ln.length < (uint64_t)rows) {
      napi_throw_error(env, NULL, "verify_native.parquetGroup: bad column arrays");
      return NULL;
    }
    col->start = (int32_t *)st.data;
    col->length = (int32_t *)ln.data;
  }
  GroupJob job = {src.data, bytes.data, rows, columns, {0}, 0, 0};
  /* Biggest first, so that the last column a thread takes is a small one. */
  for (int c = 0; c < COLUMNS; c++) job.order[c] = c;
  for (int i = 1; i < COLUMNS; i++) {
    for (int j = i; j > 0 && columns[job.order[j]].region_end - columns[job.order[j]].region_start >
                                 columns[job.order[j - 1]].region_end - columns[job.order[j - 1]].region_start; j--) {
      int t = job.order[j];
      job.order[j] = job.order[j - 1];
      job.order[j - 1] = t;
    }
  }
  int n = threads > COLUMNS ? COLUMNS : (int)threads;
  GroupJob *parts[COLUMNS];
  for (int k = 0; k < n; k++) parts[k] = &job;
  run_parts(group_part, parts, sizeof parts[0], n);
  return boolean(env, !job.failed);
}

/* ------------------------------------------------------------ chain runs */

/*
 * chainRun(seq, version, hashes, same, from, to, expected, encodingVersion, prev, prevAt):
 * the fast path of StreamingChainVerifier.pushBatch() (src/chain/verifier.ts)
 * over the results of a batch: from event `from` on, while an event has the
 * expected sequence_no (`expected`, then one more each), the encoding
 * version, its recomputed hash equal to its stored one (same[i] 1) and its
 * stored prev_hash equal to the previous event's hash (prev[prevAt..+32)
 * for the first, then the previous event's recomputed hash), it passes.
 * Returns the first event before `to` that does not (to when all do):
 * pushBatch() counts the ones that passed and checks that one itself.
 */
static napi_value chain_run(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Typed prev;
  Results r;
  int64_t from, to, expected, prev_at;
  double encoding;
  bool lossless = false;
  if (argc != 10 || !results_args(env, argv, &r) || !int_arg(env, argv[4], &from) || !int_arg(env, argv[5], &to) ||
      napi_get_value_bigint_int64(env, argv[6], &expected, &lossless) != napi_ok || !lossless || napi_get_value_double(env, argv[7], &encoding) != napi_ok ||
      !typed_arg(env, argv[8], napi_uint8_array, &prev) || !int_arg(env, argv[9], &prev_at) || from < 0 || to < from || (uint64_t)to > r.capacity ||
      prev_at < 0 || (uint64_t)prev_at > prev.length || prev.length - (uint64_t)prev_at < 32) {
    napi_throw_error(env, NULL, "verify_native.chainRun: bad arguments");
    return NULL;
  }
  const uint8_t *link = prev.data + prev_at;
  int64_t i = from;
  for (; i < to; i++) {
    const uint8_t *h = r.hashes + (size_t)i * 96;
    if (r.same[i] != 1 || r.version[i] != encoding || r.seq[i] != expected || memcmp(h, link, 32) != 0) break;
    /* (INT64_MAX has no next: the TypeScript, with BigInts, decides what follows it) */
    if (expected == INT64_MAX) {
      i++;
      break;
    }
    expected++;
    link = h + 64;
  }
  napi_value result;
  CHECK(napi_create_int64(env, i, &result));
  return result;
}

/* ------------------------------------------------------------ file digest */

/*
 * A data file's SHA-256 (the manifest's digest) computed on a thread of its
 * own while the batch it covers is decoded: digestStart() hashes
 * data[from..to) on a new thread (after the previous part: the parts go in
 * order), digestJoin() waits for it, digestHex() waits and returns the hex.
 * A reference keeps the array alive, not its memory: until digestJoin()
 * returns, the caller must not change, detach, transfer or resize the
 * buffer (src/export/native.ts says so too).
 */
typedef struct {
  SHA256_CTX ctx;
  pthread_t thread;
  int running;
  const uint8_t *p;
  size_t n;
  napi_ref held;
  int finished;
} Digest;

static void *digest_part(void *arg) {
  Digest *d = arg;
  SHA256_Update(&d->ctx, d->p, d->n);
  return NULL;
}

static void digest_join(napi_env env, Digest *d) {
  if (d->running) pthread_join(d->thread, NULL);
  d->running = 0;
  if (d->held != NULL && env != NULL) napi_delete_reference(env, d->held);
  d->held = NULL;
}

static void digest_free(napi_env env, void *data, void *hint) {
  (void)hint;
  Digest *d = data;
  digest_join(env, d);
  free(d);
}

/* Marks the externals that are Digests (another addon's external is not one). */
static const napi_type_tag DIGEST_TAG = {0x7061742d64696765ull, 0x73742d7665726966ull};

static Digest *digest_arg(napi_env env, napi_value v) {
  void *d = NULL;
  napi_valuetype t;
  bool tagged = false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, &DIGEST_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, v, &d) != napi_ok) {
    return NULL;
  }
  return d;
}

static napi_value digest_create(napi_env env, napi_callback_info info) {
  (void)info;
  Digest *d = calloc(1, sizeof *d);
  if (d == NULL) {
    napi_throw_error(env, NULL, "verify_native.digestCreate: out of memory");
    return NULL;
  }
  SHA256_Init(&d->ctx);
  napi_value result;
  if (napi_create_external(env, d, digest_free, NULL, &result) != napi_ok) {
    free(d);
    napi_throw_error(env, NULL, "verify_native.digestCreate failed");
    return NULL;
  }
  CHECK(napi_type_tag_object(env, result, &DIGEST_TAG));
  return result;
}

/* digestStart(digest, data, from, to) */
static napi_value digest_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Digest *d = argc == 4 ? digest_arg(env, argv[0]) : NULL;
  Typed data;
  int64_t from, to;
  if (d == NULL || d->finished || !typed_arg(env, argv[1], napi_uint8_array, &data) || !int_arg(env, argv[2], &from) || !int_arg(env, argv[3], &to) ||
      from < 0 || to < from || (uint64_t)to > data.length) {
    napi_throw_error(env, NULL, "verify_native.digestStart: bad arguments");
    return NULL;
  }
  digest_join(env, d); /* the parts in order */
  d->p = data.data + from;
  d->n = (size_t)(to - from);
  CHECK(napi_create_reference(env, argv[1], 1, &d->held));
  d->running = pthread_create(&d->thread, NULL, digest_part, d) == 0;
  if (!d->running) digest_part(d); /* no thread: here */
  return NULL;
}

/* digestJoin(digest) */
static napi_value digest_join_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Digest *d = argc == 1 ? digest_arg(env, argv[0]) : NULL;
  if (d == NULL) {
    napi_throw_error(env, NULL, "verify_native.digestJoin: bad arguments");
    return NULL;
  }
  digest_join(env, d);
  return NULL;
}

/* digestHex(digest): the SHA-256 of all parts, as 64 hex digits (once). */
static napi_value digest_hex(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Digest *d = argc == 1 ? digest_arg(env, argv[0]) : NULL;
  if (d == NULL || d->finished) {
    napi_throw_error(env, NULL, "verify_native.digestHex: bad arguments");
    return NULL;
  }
  digest_join(env, d);
  uint8_t h[32];
  SHA256_Final(h, &d->ctx);
  d->finished = 1;
  char hex[65];
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = "0123456789abcdef"[h[i] >> 4];
    hex[2 * i + 1] = "0123456789abcdef"[h[i] & 15];
  }
  napi_value result;
  CHECK(napi_create_string_latin1(env, hex, 64, &result));
  return result;
}

/* ----------------------------------------------------------------- module */

static void init_once(void) {
  init_tables();
  for (int f = 0; f < 19; f++) KEY_LENGTH[f] = strlen(KEYS[f]);
}

static pthread_once_t initialized = PTHREAD_ONCE_INIT;

static napi_value init(napi_env env, napi_value exports) {
  /* Once per process: a worker thread that loads the module must not rewrite tables other threads read. */
  pthread_once(&initialized, init_once);
  napi_property_descriptor props[] = {
      {"jsonlDecode", NULL, jsonl_decode, NULL, NULL, NULL, napi_default, NULL},
      {"parquetRows", NULL, parquet_rows, NULL, NULL, NULL, napi_default, NULL},
      {"snappyDecompress", NULL, snappy_decompress, NULL, NULL, NULL, napi_default, NULL},
      {"readPlain", NULL, read_plain, NULL, NULL, NULL, napi_default, NULL},
      {"readHybrid", NULL, read_hybrid, NULL, NULL, NULL, napi_default, NULL},
      {"definedCount", NULL, defined_count, NULL, NULL, NULL, napi_default, NULL},
      {"spreadValues", NULL, spread_values, NULL, NULL, NULL, napi_default, NULL},
      {"parquetGroup", NULL, parquet_group, NULL, NULL, NULL, napi_default, NULL},
      {"chainRun", NULL, chain_run, NULL, NULL, NULL, napi_default, NULL},
      {"digestCreate", NULL, digest_create, NULL, NULL, NULL, napi_default, NULL},
      {"digestStart", NULL, digest_start, NULL, NULL, NULL, napi_default, NULL},
      {"digestJoin", NULL, digest_join_js, NULL, NULL, NULL, napi_default, NULL},
      {"digestHex", NULL, digest_hex, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  napi_value version;
  CHECK(napi_create_uint32(env, 5, &version));
  CHECK(napi_set_named_property(env, exports, "version", version));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
