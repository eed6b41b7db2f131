/*
 * deferred_row_event.sql's trigger written in C: what building the event on
 * the server in C, rather than in SQL and PL/pgSQL, would buy. A prototype
 * for bench/designs.ts, not part of the product (which installs by
 * migration, with no compiled code on the server).
 *
 * The same structure and the same event as deferred_row_event.sql's
 * bench_design.capture(): a deferred constraint row trigger that, at commit,
 * per changed row, builds the event (the field delta, a ULID, the actor and
 * context from the session's audit_trail.* settings, db_identity), encodes it
 * canonically (docs/hash-chain.md), moves the tenant's head and writes the
 * event into bench_design.trail; bench_design.check_trail() recomputes every
 * hash with audit_trail.encode_body() afterwards. Differences, in the
 * prototype's favour or neutral: the field delta is written from each
 * column's JSON text directly rather than from to_jsonb() row images (for
 * the column types of pgbench's tables and their like: numbers, booleans,
 * text, dates and timestamps; others are refused), db_identity is read once
 * per transaction (as the product's commit step does), and the head is read
 * and moved with two saved plans instead of one UPDATE ... RETURNING.
 *
 * A second function, design_capture_inserts_c(), is the statement trigger of
 * a bulk import for bench/designs_bulk.ts: the same event per inserted row,
 * read from the transition table, written BUILT_BATCH at a time, the head
 * moved once a statement (as the product's statement trigger and commit
 * step do for inserts).
 *
 * Built by bench/designs/c_prototype.ts against the server's own headers
 * (pg_config --includedir-server; PostgreSQL 15 here, from Debian's
 * postgresql-server-dev-15) and loaded from its path.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryenvironment.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(design_capture_c);
PG_FUNCTION_INFO_V1(design_capture_inserts_c);

/* Saved plans: read and lock the head, move it, write the event. */
static SPIPlanPtr head_plan = NULL;
static SPIPlanPtr move_plan = NULL;
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr identity_plan = NULL;
/* Events a bulk statement collects before it writes them. */
#define BUILT_BATCH 1000
/* db_identity of the transaction that last asked for it. */
static LocalTransactionId identity_lxid = InvalidLocalTransactionId;
static char *identity_text = NULL;

/* An audit_trail.* setting; NULL when unset or empty, as nullif(current_setting(..., true), ''). */
static const char *
setting(const char *name)
{
	const char *v = GetConfigOption(name, true, false);

	return (v == NULL || v[0] == '\0') ? NULL : v;
}

/* A canonical field: 4-byte big-endian length, then the bytes; NULL is 0xFFFFFFFF. */
static void
put_field(StringInfo body, const char *bytes, int len)
{
	uint32		n = pg_hton32(bytes == NULL ? 0xFFFFFFFFu : (uint32) len);

	appendBinaryStringInfo(body, (const char *) &n, 4);
	if (bytes != NULL)
		appendBinaryStringInfo(body, bytes, len);
}

static void
put_text(StringInfo body, const char *s)
{
	put_field(body, s, s == NULL ? 0 : (int) strlen(s));
}

static void
put_int8(StringInfo body, int64 v)
{
	uint64		n = pg_hton64((uint64) v);

	put_field(body, (const char *) &n, 8);
}

/* Microseconds since 1970-01-01 UTC of a timestamptz. */
static int64
unix_micros(TimestampTz t)
{
	return (int64) t + ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC);
}

/* A ULID: 48-bit milliseconds and 80 random bits, Crockford base32. */
static void
new_ulid(TimestampTz now, char *out)
{
	static const char digits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	uint64		ms = (uint64) (unix_micros(now) / 1000);
	uint8		r[10];
	int			i;

	if (!pg_strong_random(r, sizeof(r)))
		elog(ERROR, "could not draw random bytes");
	for (i = 9; i >= 0; i--)
	{
		out[i] = digits[ms & 31];
		ms >>= 5;
	}
	/* 80 bits: two 40-bit halves, eight digits each */
	for (i = 0; i < 2; i++)
	{
		uint64		half = 0;
		int			j;

		for (j = 0; j < 5; j++)
			half = (half << 8) | r[i * 5 + j];
		for (j = 7; j >= 0; j--)
		{
			out[10 + i * 8 + j] = digits[half & 31];
			half >>= 5;
		}
	}
	out[26] = '\0';
}

/* The JSON text to_jsonb() gives a column's value (the types of pgbench's tables and their like). */
static void
append_json_value(StringInfo out, Datum value, bool isnull, Oid typid)
{
	Oid			outfn;
	bool		varlena;
	char	   *s;

	if (isnull)
	{
		appendStringInfoString(out, "null");
		return;
	}
	switch (typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			getTypeOutputInfo(typid, &outfn, &varlena);
			s = OidOutputFunctionCall(outfn, value);
			/* NaN and the infinities are strings in JSON */
			if (strcmp(s, "NaN") == 0 || strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0)
				escape_json(out, s);
			else
				appendStringInfoString(out, s);
			return;
		case BOOLOID:
			appendStringInfoString(out, DatumGetBool(value) ? "true" : "false");
			return;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			{
				char		buf[MAXDATELEN + 1];

				JsonEncodeDateTime(buf, value, typid, NULL);
				escape_json(out, buf);
				return;
			}
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
			getTypeOutputInfo(typid, &outfn, &varlena);
			escape_json(out, OidOutputFunctionCall(outfn, value));
			return;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the C prototype does not write columns of type %s", format_type_be(typid))));
	}
}

typedef struct Column
{
	const char *name;
	int			attnum;
	Oid			typid;
} Column;

static int
column_by_name(const void *a, const void *b)
{
	return strcmp(((const Column *) a)->name, ((const Column *) b)->name);
}

/* The field delta as jsonb text: every column for a create or delete, the changed ones for an update; NULL when none changed. */
static char *
changes_text(TupleDesc desc, HeapTuple oldt, HeapTuple newt)
{
	Column	   *cols = palloc(sizeof(Column) * desc->natts);
	int			n = 0;
	int			i;
	bool		any = false;
	StringInfoData out;
	StringInfoData before;
	StringInfoData after;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		cols[n].name = NameStr(att->attname);
		cols[n].attnum = att->attnum;
		cols[n].typid = att->atttypid;
		n++;
	}
	/* order by key, as the SQL's array_agg(... order by f.key) in a C-collation database */
	qsort(cols, n, sizeof(Column), column_by_name);

	initStringInfo(&out);
	initStringInfo(&before);
	initStringInfo(&after);
	appendStringInfoChar(&out, '[');
	for (i = 0; i < n; i++)
	{
		bool		bnull = true;
		bool		anull = true;
		Datum		bv = (Datum) 0;
		Datum		av = (Datum) 0;

		resetStringInfo(&before);
		resetStringInfo(&after);
		if (oldt != NULL)
			bv = heap_getattr(oldt, cols[i].attnum, desc, &bnull);
		if (newt != NULL)
			av = heap_getattr(newt, cols[i].attnum, desc, &anull);
		append_json_value(&before, bv, oldt == NULL || bnull, cols[i].typid);
		append_json_value(&after, av, newt == NULL || anull, cols[i].typid);
		/* an update records the fields whose JSON differs (the SQL compares the jsonb values) */
		if (oldt != NULL && newt != NULL && strcmp(before.data, after.data) == 0)
			continue;
		if (any)
			appendStringInfoString(&out, ", ");
		any = true;
		appendStringInfoString(&out, "{\"after\": ");
		appendStringInfoString(&out, newt == NULL ? "null" : after.data);
		appendStringInfoString(&out, ", \"field\": ");
		escape_json(&out, cols[i].name);
		appendStringInfoString(&out, ", \"before\": ");
		appendStringInfoString(&out, oldt == NULL ? "null" : before.data);
		appendStringInfoChar(&out, '}');
	}
	appendStringInfoChar(&out, ']');
	return any ? out.data : NULL;
}

/* A string member of the trigger's options (jsonb text), or the first element of an array member. */
static char *
option(Jsonb *options, const char *key, bool first_of_array)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&options->root, JB_FOBJECT, &k);
	if (v != NULL && first_of_array && v->type == jbvBinary)
		v = getIthJsonbValueFromContainer(v->val.binary.data, 0);
	if (v == NULL || v->type != jbvString)
		elog(ERROR, "the trigger's options have no string \"%s\"", key);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static SPIPlanPtr
saved_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s == NULL ? (Datum) 0 : CStringGetTextDatum(s);
}

/* What every event of one trigger call shares: its table's options, the session's settings, the context. */
typedef struct Call
{
	char	   *table;
	char	   *resource_type;
	int			key_attnum;
	int			tenant_attnum;	/* 0: the tenant is the session's audit_trail.tenant_id */
	const char *tenant;
	const char *actor_type;
	const char *actor_id;
	const char *actor_name;
	const char *auth_method;
	const char *source_ip;
	const char *user_agent_hash;
	const char *reason;
	const char *occurred_setting;
	Datum		context_jsonb;
	char	   *context_out;
} Call;

/* The plans, connected to SPI; db_identity of this transaction. */
static void
prepare_plans(void)
{
	/* (each plan prepared once per session; one that failed is prepared again at the next call) */
	if (head_plan == NULL)
	{
		Oid			types[1] = {TEXTOID};

		head_plan = saved_plan("select sequence_no, record_hash from bench_design.heads where tenant_id = $1 for update",
							   1, types);
	}
	if (move_plan == NULL)
	{
		Oid			types[3] = {TEXTOID, INT8OID, BYTEAOID};

		move_plan = saved_plan("update bench_design.heads set sequence_no = $2, prev_hash = record_hash, record_hash = $3 "
							   "where tenant_id = $1", 3, types);
	}
	if (insert_plan == NULL)
	{
		Oid			types[20] = {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID,
			TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, JSONBOID, JSONOID,
		BYTEAOID, BYTEAOID};

		insert_plan = saved_plan("insert into bench_design.trail (event_id, tenant_id, sequence_no, occurred_at, ingested_at, "
								 "actor_type, actor_id, actor_name, auth_method, source_ip, user_agent_hash, action, "
								 "resource_type, resource_id, parent_type, parent_id, changes, reason, context, db_identity, "
								 "encoding_version, prev_hash, record_hash) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
								 "$11, $12, $13, $14, null, null, $15, $16, $17, $18, 1, $19, $20)", 20, types);
	}
	if (identity_plan == NULL)
		identity_plan = saved_plan("select audit_trail.db_identity_text(session_user::text, "
								   "pg_catalog.current_setting('application_name'), pg_catalog.inet_client_addr(), "
								   "pg_catalog.pg_backend_pid(), pg_catalog.pg_current_xact_id())::text", 0, NULL);
	/* db_identity: once per transaction, as the product's commit step */
	if (identity_text == NULL || identity_lxid != MyProc->lxid)
	{
		char	   *t;

		if (SPI_execute_plan(identity_plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "db_identity_text() failed");
		t = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (identity_text != NULL)
			pfree(identity_text);
		identity_text = MemoryContextStrdup(TopMemoryContext, t);
		identity_lxid = MyProc->lxid;
	}
}

/* The options (the trigger's argument, jsonb text) and the settings, read once per call. */
static void
start_call(TriggerData *td, Call *call)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	Jsonb	   *options;
	char	   *key_column;
	StringInfoData ctx;

	if (td->tg_trigger->tgnargs != 1)
		elog(ERROR, "the capture trigger takes one argument, its options");
	options = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(td->tg_trigger->tgargs[0])));
	call->table = option(options, "table", false);
	call->resource_type = option(options, "resource_type", false);
	key_column = option(options, "key_columns", true);
	call->key_attnum = SPI_fnumber(desc, key_column);
	if (call->key_attnum <= 0)
		elog(ERROR, "no column \"%s\"", key_column);
	call->tenant_attnum = 0;
	call->tenant = setting("audit_trail.tenant_id");
	if (call->tenant == NULL)
	{
		char	   *tenant_column = option(options, "tenant_column", false);

		call->tenant_attnum = SPI_fnumber(desc, tenant_column);
		if (call->tenant_attnum <= 0)
			elog(ERROR, "no column \"%s\"", tenant_column);
	}
	call->actor_type = setting("audit_trail.actor_type");
	if (call->actor_type == NULL)
		call->actor_type = "user";
	call->actor_id = setting("audit_trail.actor_id");
	call->actor_name = setting("audit_trail.actor_name");
	call->auth_method = setting("audit_trail.auth_method");
	call->source_ip = setting("audit_trail.source_ip");
	call->user_agent_hash = setting("audit_trail.user_agent_hash");
	call->reason = setting("audit_trail.reason");
	call->occurred_setting = setting("audit_trail.occurred_at");

	/* context: {"table": ...} || strip_nulls({"request_id": ..., "capture_method": "trigger"}) */
	initStringInfo(&ctx);
	appendStringInfoString(&ctx, "{\"table\": ");
	escape_json(&ctx, call->table);
	if (setting("audit_trail.request_id") != NULL)
	{
		appendStringInfoString(&ctx, ", \"request_id\": ");
		escape_json(&ctx, setting("audit_trail.request_id"));
	}
	appendStringInfoString(&ctx, ", \"capture_method\": \"trigger\"}");
	call->context_jsonb = DirectFunctionCall1(jsonb_in, CStringGetDatum(ctx.data));
	call->context_out = JsonbToCString(NULL, &DatumGetJsonbP(call->context_jsonb)->root,
									   VARSIZE(DatumGetPointer(call->context_jsonb)));
}

/* A row's tenant: the session's, or the row's tenant column. */
static const char *
row_tenant(Call *call, TupleDesc desc, HeapTuple t)
{
	char	   *tenant;

	if (call->tenant_attnum == 0)
		return call->tenant;
	tenant = SPI_getvalue(t, desc, call->tenant_attnum);
	if (tenant == NULL)
		elog(ERROR, "a row without a tenant");
	return tenant;
}

/*
 * One event: its canonical body (every field but the chain position) into
 * `body`, the insert's values into values[] and nulls[] (all but
 * sequence_no, prev_hash and record_hash). False when an update changed
 * nothing (no event).
 */
static bool
build_event(Call *call, TupleDesc desc, HeapTuple oldt, HeapTuple newt, const char *action, const char *tenant,
			StringInfo body, Datum *values, bool *nulls)
{
	char	   *changes = changes_text(desc, oldt, newt);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz occurred_at;
	char	   *event_id = palloc(27);
	char	   *resource_id;
	Datum		changes_jsonb;
	char	   *changes_out;

	if (changes == NULL)
		return false;
	resource_id = SPI_getvalue(newt != NULL ? newt : oldt, desc, call->key_attnum);
	occurred_at = call->occurred_setting == NULL ? now
		: DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(call->occurred_setting),
												  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	/* the jsonb value, and its text as jsonb_out() gives it: what the canonical encoding hashes */
	changes_jsonb = DirectFunctionCall1(jsonb_in, CStringGetDatum(changes));
	changes_out = JsonbToCString(NULL, &DatumGetJsonbP(changes_jsonb)->root, VARSIZE(DatumGetPointer(changes_jsonb)));
	new_ulid(now, event_id);

	/* the canonical encoding (docs/hash-chain.md) */
	resetStringInfo(body);
	appendBinaryStringInfo(body, "PGAT\x00\x01", 6);
	put_text(body, event_id);
	put_text(body, tenant);
	put_int8(body, unix_micros(occurred_at));
	put_int8(body, unix_micros(now));
	put_text(body, call->actor_type);
	put_text(body, call->actor_id);
	put_text(body, call->actor_name);
	put_text(body, call->auth_method);
	put_text(body, call->source_ip);
	put_text(body, call->user_agent_hash);
	put_text(body, action);
	put_text(body, call->resource_type);
	put_text(body, resource_id);
	put_text(body, NULL);		/* parent_type */
	put_text(body, NULL);		/* parent_id */
	put_text(body, changes_out);
	put_text(body, call->reason);
	put_text(body, call->context_out);
	put_text(body, identity_text);

	memset(nulls, false, sizeof(bool) * 20);
	values[0] = CStringGetTextDatum(event_id);
	values[1] = CStringGetTextDatum(tenant);
	values[3] = TimestampTzGetDatum(occurred_at);
	values[4] = TimestampTzGetDatum(now);
	values[5] = CStringGetTextDatum(call->actor_type);
	values[6] = text_or_null(call->actor_id, &nulls[6]);
	values[7] = text_or_null(call->actor_name, &nulls[7]);
	values[8] = text_or_null(call->auth_method, &nulls[8]);
	values[9] = text_or_null(call->source_ip, &nulls[9]);
	values[10] = text_or_null(call->user_agent_hash, &nulls[10]);
	values[11] = CStringGetTextDatum(action);
	values[12] = CStringGetTextDatum(call->resource_type);
	values[13] = text_or_null(resource_id, &nulls[13]);
	values[14] = changes_jsonb;
	values[15] = text_or_null(call->reason, &nulls[15]);
	values[16] = call->context_jsonb;
	values[17] = CStringGetTextDatum(identity_text);	/* json's stored form is its text */
	return true;
}

/* A 32-byte bytea. */
static bytea *
hash_bytea(const uint8 *hash)
{
	bytea	   *b = palloc(VARHDRSZ + 32);

	SET_VARSIZE(b, VARHDRSZ + 32);
	memcpy(VARDATA(b), hash, 32);
	return b;
}

/*
 * The chain step (record_hash = sha256(body || field(sequence_no) ||
 * field(prev_hash))), then the event: written with the saved plan, or, with
 * `collect`, added to it as a row of bench_design.trail (`trail`: its
 * descriptor), for write_built().
 */
static void
chain_and_write(StringInfo body, Datum *values, bool *nulls, int64 seq, const uint8 *prev, uint8 *record_hash,
				Tuplestorestate *collect, TupleDesc trail)
{
	pg_cryptohash_ctx *sha;

	put_int8(body, seq);
	put_field(body, (const char *) prev, 32);
	sha = pg_cryptohash_create(PG_SHA256);
	if (sha == NULL || pg_cryptohash_init(sha) < 0 || pg_cryptohash_update(sha, (uint8 *) body->data, body->len) < 0 ||
		pg_cryptohash_final(sha, record_hash, 32) < 0)
		elog(ERROR, "SHA-256 failed");
	pg_cryptohash_free(sha);
	values[2] = Int64GetDatum(seq);
	values[18] = PointerGetDatum(hash_bytea(prev));
	values[19] = PointerGetDatum(hash_bytea(record_hash));
	if (collect != NULL)
	{
		/* the table's columns: the 20 values with parent_type, parent_id (NULL) and encoding_version (1) */
		Datum		row[23];
		bool		row_nulls[23];

		memcpy(row, values, sizeof(Datum) * 14);
		memcpy(row_nulls, nulls, sizeof(bool) * 14);
		row_nulls[14] = row_nulls[15] = true;
		row[14] = row[15] = (Datum) 0;
		memcpy(row + 16, values + 14, sizeof(Datum) * 4);
		memcpy(row_nulls + 16, nulls + 14, sizeof(bool) * 4);
		row[20] = Int16GetDatum(1);
		row_nulls[20] = false;
		memcpy(row + 21, values + 18, sizeof(Datum) * 2);
		memcpy(row_nulls + 21, nulls + 18, sizeof(bool) * 2);
		tuplestore_putvalues(collect, trail, row, row_nulls);
	}
	else
	{
		char		n[20];
		int			i;

		for (i = 0; i < 20; i++)
			n[i] = nulls[i] ? 'n' : ' ';
		if (SPI_execute_plan(insert_plan, values, n, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "the event was not written");
	}
}

/* The tenant's head, locked until the end of the transaction. */
static int64
lock_head(const char *tenant, uint8 *hash)
{
	Datum		arg = CStringGetTextDatum(tenant);
	bool		isnull;
	bytea	   *h;

	if (SPI_execute_plan(head_plan, &arg, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "no head for tenant \"%s\"", tenant);
	h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull || VARSIZE_ANY_EXHDR(h) != 32)
		elog(ERROR, "the head's hash is not 32 bytes");
	memcpy(hash, VARDATA_ANY(h), 32);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
move_head(const char *tenant, int64 seq, const uint8 *hash)
{
	Datum		args[3];

	args[0] = CStringGetTextDatum(tenant);
	args[1] = Int64GetDatum(seq);
	args[2] = PointerGetDatum(hash_bytea(hash));
	if (SPI_execute_plan(move_plan, args, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "the head of tenant \"%s\" did not move", tenant);
}

/* The deferred constraint row trigger (AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW): one event, one head move. */
Datum
design_capture_c(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	oldt = NULL;
	HeapTuple	newt = NULL;
	const char *action;
	const char *tenant;
	Call		call;
	StringInfoData body;
	Datum		values[20];
	bool		nulls[20];
	uint8		prev[32];
	uint8		hash[32];
	int64		seq;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "design_capture_c: an AFTER ... FOR EACH ROW trigger only");
	desc = RelationGetDescr(td->tg_relation);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		newt = td->tg_trigtuple;
		action = "create";
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		oldt = td->tg_trigtuple;
		action = "delete";
	}
	else
	{
		oldt = td->tg_trigtuple;
		newt = td->tg_newtuple;
		action = "update";
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();
	start_call(td, &call);
	tenant = row_tenant(&call, desc, newt != NULL ? newt : oldt);
	initStringInfo(&body);
	if (build_event(&call, desc, oldt, newt, action, tenant, &body, values, nulls))
	{
		seq = lock_head(tenant, prev) + 1;
		chain_and_write(&body, values, nulls, seq, prev, hash, NULL, NULL);
		move_head(tenant, seq, hash);
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* Writes the events collected so far (registered as built_events) with one INSERT, and empties the collection. */
static void
write_built(Tuplestorestate *collect)
{
	int64		n = tuplestore_tuple_count(collect);

	if (n == 0)
		return;
	if (SPI_execute("insert into bench_design.trail select * from built_events", false, 0) != SPI_OK_INSERT ||
		SPI_processed != (uint64) n)
		elog(ERROR, "the events were not written");
	tuplestore_clear(collect);
}

/*
 * The statement trigger of a bulk import (AFTER INSERT ... REFERENCING NEW
 * TABLE AS new_rows FOR EACH STATEMENT): one event per row, collected and
 * written by one INSERT per BUILT_BATCH events (the rows as an ephemeral
 * named relation), the head locked once and moved once. One tenant per statement
 * (refused otherwise).
 */
Datum
design_capture_inserts_c(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	TupleTableSlot *slot;
	MemoryContext per_row;
	MemoryContext outer;
	Call		call;
	StringInfoData body;
	Datum		values[20];
	bool		nulls[20];
	uint8		prev[32];
	uint8		hash[32];
	int64		seq = -1;
	char	   *tenant = NULL;
	TupleDesc	trail;
	Tuplestorestate *collect;
	EphemeralNamedRelation built;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(td->tg_event) || td->tg_newtable == NULL)
		elog(ERROR, "design_capture_inserts_c: an AFTER INSERT ... REFERENCING NEW TABLE ... FOR EACH STATEMENT trigger only");
	desc = RelationGetDescr(td->tg_relation);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();
	start_call(td, &call);
	initStringInfo(&body);
	/* the events, collected and written BUILT_BATCH at a time by an INSERT ... SELECT from them */
	if (SPI_execute("select * from bench_design.trail limit 0", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read bench_design.trail's columns");
	trail = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	if (trail->natts != 23)
		elog(ERROR, "bench_design.trail has %d columns, not those of audit_trail.events", trail->natts);
	collect = tuplestore_begin_heap(false, false, work_mem);
	built = palloc0(sizeof(EphemeralNamedRelationData));
	built->md.name = "built_events";
	built->md.reliddesc = InvalidOid;
	built->md.tupdesc = trail;
	built->md.enrtype = ENR_NAMED_TUPLESTORE;
	built->md.enrtuples = BUILT_BATCH;
	built->reldata = collect;
	if (SPI_register_relation(built) != SPI_OK_REL_REGISTER)
		elog(ERROR, "could not register the built events");
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	per_row = AllocSetContextCreate(CurrentMemoryContext, "design_capture_inserts_c row", ALLOCSET_DEFAULT_SIZES);
	outer = CurrentMemoryContext;
	tuplestore_rescan(td->tg_newtable);
	while (tuplestore_gettupleslot(td->tg_newtable, true, false, slot))
	{
		bool		should_free;
		HeapTuple	t;
		const char *row_tenant_id;

		/* what the row builds goes into its own context (SPI calls return in SPI's procedure context) */
		MemoryContextSwitchTo(per_row);
		t = ExecFetchSlotHeapTuple(slot, false, &should_free);
		row_tenant_id = row_tenant(&call, desc, t);

		if (tenant == NULL)
		{
			tenant = MemoryContextStrdup(outer, row_tenant_id);
			seq = lock_head(tenant, prev);
		}
		else if (strcmp(tenant, row_tenant_id) != 0)
			elog(ERROR, "the C prototype takes one tenant per statement");
		if (build_event(&call, desc, NULL, t, "create", tenant, &body, values, nulls))
		{
			seq += 1;
			chain_and_write(&body, values, nulls, seq, prev, hash, collect, trail);
			memcpy(prev, hash, 32);
			if (tuplestore_tuple_count(collect) >= BUILT_BATCH)
				write_built(collect);
		}
		/*
		 * The next row is read in the outer context (the slot frees it when it
		 * takes the one after); what this row built (its heap tuple included) is freed. (The body's
		 * buffer lives in the outer context too: build_event() resets its length.)
		 */
		MemoryContextSwitchTo(outer);
		MemoryContextReset(per_row);
	}
	if (tenant != NULL)
	{
		write_built(collect);
		move_head(tenant, seq, prev);
	}
	tuplestore_end(collect);
	ExecDropSingleTupleTableSlot(slot);
	SPI_finish();
	return PointerGetDatum(NULL);
}
