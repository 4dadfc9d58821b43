/*
 * unit-ingest.c - tests for ingest.c's pure parts: recognising files by
 * name, the key rule, and each format's parser over byte-exact recordings
 * of what the programs write (Keras, Lightning, YOLO old and new, dvclive,
 * trainer_state.json, hparams/args/params/Hydra YAML, config.json), fed in
 * pieces that cut lines, as FUSE hands writes over.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ingest.h"
#include "metric.h"
#include "tap.h"

/* What a parser gave, one line each: "KEY STEP VALUE" (and " @TS" when the
 * point has a time), "KEY=VALUE", "! why". */
static struct buf got;

static void on_point(void *ctx, const char *key, double value, int64_t step, int64_t ts)
{
	char v[METRIC_VALUE_MAX];

	(void)ctx;
	metric_format_value(value, v);
	buf_addf(&got, "%s %lld %s", key, (long long)step, v);
	if (ts >= 0)
		buf_addf(&got, " @%lld", (long long)ts);
	buf_addch(&got, '\n');
}

static void on_param(void *ctx, const char *key, const char *value)
{
	(void)ctx;
	buf_addf(&got, "%s=%s\n", key, value);
}

static void on_note(void *ctx, int err, const char *why)
{
	(void)ctx;
	(void)err;
	buf_addf(&got, "! %s\n", why);
}

static const struct ingest_sink sink = { on_point, on_param, on_note, NULL };

/* Feeds text to a fresh table in pieces of step bytes (0: all at once). */
static const char *table(const char *fixed, const char *text, size_t step)
{
	struct ingest_table t;
	size_t len = strlen(text), at;

	buf_reset(&got);
	ingest_table_init(&t, fixed);
	for (at = 0; at < len; at += step ? step : len)
		ingest_table_feed(&t, text + at, step && len - at > step ? step : len - at, &sink);
	ingest_table_release(&t);
	return buf_str(&got);
}

static void test_recognise(void)
{
	static const struct {
		const char *path;
		enum ingest_format want;
	} cases[] = {
		{ "training.log", INGEST_TABLE },
		{ "lightning_logs/version_0/metrics.csv", INGEST_TABLE },
		{ "runs/detect/train/results.CSV", INGEST_TABLE },
		{ "out.txt", INGEST_TABLE },
		{ "a.tsv", INGEST_TABLE },
		{ "dvclive/plots/metrics/train/loss.tsv", INGEST_DVCLIVE },
		{ "plots/metrics/acc.tsv", INGEST_DVCLIVE },
		{ "myplots/metrics/acc.tsv", INGEST_TABLE },
		{ "out/checkpoint-500/trainer_state.json", INGEST_TRAINER_STATE },
		{ "dvclive/metrics.json", INGEST_METRICS_JSON },
		{ "lightning_logs/version_0/hparams.yaml", INGEST_PARAMS_YAML },
		{ "args.yaml", INGEST_PARAMS_YAML },
		{ "dvclive/params.yaml", INGEST_PARAMS_YAML },
		{ "outputs/.hydra/config.yaml", INGEST_PARAMS_YAML },
		{ ".hydra/config.yaml", INGEST_PARAMS_YAML },
		{ "x.hydra/config.yaml", INGEST_NONE },
		{ "config.yaml", INGEST_NONE },
		{ ".hydra/hydra.yaml", INGEST_NONE },
		{ "model/config.json", INGEST_PARAMS_JSON },
		{ "model.bin", INGEST_NONE },
		{ "csv", INGEST_NONE },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(ingest_recognise(cases[i].path), cases[i].want, cases[i].path);
}

static void test_keys(void)
{
	static const struct {
		const char *in, *want; /* want NULL: refused (-1); "": nothing left */
	} cases[] = {
		{ "metrics/mAP50(B)", "metrics/mAP50B" },
		{ "   metrics/mAP50-95(B)", "metrics/mAP50-95B" },
		{ "\"val loss\"", "val loss" },
		{ "top@1", "top_1" },
		{ "a,b;c", "a_b_c" },
		{ "train/loss", "train/loss" },
		{ "caf\xc3\xa9", "caf\xc3\xa9" },
		{ "\xff", "_" },
		{ "()", "" },
		{ "  ", "" },
		{ "/abs", NULL },
		{ "a//b", NULL },
		{ "a/../b", NULL },
		{ "..x", NULL },
	};
	char out[INGEST_KEY_MAX], long_key[300];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = ingest_key_map(cases[i].in, strlen(cases[i].in), out, sizeof(out));

		if (!cases[i].want)
			is_int(r, -1, cases[i].in);
		else
			is_str(r >= 0 ? out : "(refused)", cases[i].want, cases[i].in);
	}
	memset(long_key, 'k', 251);
	is_int(ingest_key_map(long_key, 251, out, sizeof(out)), -1, "251 characters: refused");
	is_int(ingest_key_map(long_key, 250, out, sizeof(out)), 250, "250 characters: a key");
}

/* Keras 3 CSVLogger: epoch first, sorted keys, CRLF, NA for a missing val_. */
static const char keras[] = "epoch,accuracy,loss,val_accuracy,val_loss\r\n"
			    "0,0.5,0.6931471824645996,NA,NA\r\n"
			    "1,0.75,0.5,0.8125,0.45\r\n"
			    "2,\"[1, 2, 3]\",nan,inf,-inf\r\n";
static const char keras_want[] = "accuracy 0 0.5\n"
				 "loss 0 0.6931471824645996\n"
				 "accuracy 1 0.75\n"
				 "loss 1 0.5\n"
				 "val_accuracy 1 0.8125\n"
				 "val_loss 1 0.45\n"
				 "loss 2 nan\n"
				 "val_accuracy 2 inf\n"
				 "val_loss 2 -inf\n";

/* Lightning >= 2.2: a sorted header (epoch before step), empty cells. */
static const char lightning[] = "epoch,step,train_loss,val_loss\r\n"
				"0,49,0.9,\r\n"
				"0,49,,0.8\r\n";
static const char lightning_want[] = "epoch 49 0\n"
				     "train_loss 49 0.9\n"
				     "epoch 49 0\n"
				     "val_loss 49 0.8\n";

/* YOLO before 8.3.9: every cell right-aligned to 23 characters. */
static const char yolo_old[] =
	"                  epoch,         train/box_loss,       metrics/mAP50(B)\n"
	"                      1,                 1.2345,                0.12345\n"
	"                      2,                 1.1111,                 0.2222\n";
static const char yolo_old_want[] = "train/box_loss 1 1.2345\n"
				    "metrics/mAP50B 1 0.12345\n"
				    "train/box_loss 2 1.1111\n"
				    "metrics/mAP50B 2 0.2222\n";

/* YOLO from 8.3.9: no padding, a time column, %.6g. */
static const char yolo_new[] = "epoch,time,train/box_loss,metrics/mAP50-95(B)\n"
			       "1,12.5,1.23457,0.0123457\n";
static const char yolo_new_want[] = "time 1 12.5\n"
				    "train/box_loss 1 1.23457\n"
				    "metrics/mAP50-95B 1 0.0123457\n";

static void test_tables(void)
{
	size_t steps[] = { 0, 1, 3, 7 };
	size_t i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		is_str(table(NULL, keras, steps[i]), keras_want, "Keras CSVLogger");
		is_str(table(NULL, lightning, steps[i]), lightning_want, "Lightning sorted header");
		is_str(table(NULL, yolo_old, steps[i]), yolo_old_want, "YOLO padded results.csv");
	}
	is_str(table(NULL, yolo_new, 0), yolo_new_want, "YOLO results.csv with time");
	is_str(table("train/loss", "step\tloss\n0\t1.5\n1\t1.25\n", 2),
	       "train/loss 0 1.5\ntrain/loss 1 1.25\n", "dvclive TSV: the path names the metric");
	is_str(table("acc", "timestamp\tstep\tacc\n1700000000123\t0\t0.5\n", 0),
	       "acc 0 0.5 @1700000000123\n", "dvclive TSV with a timestamp");
	is_str(table(NULL, "Step;Loss\n3.0;1\n3.5;2\nx;3\n;4\n4;\n", 0), "Loss 3 1\n",
	       "';' separated: 3.0 is step 3, 3.5, text and empty steps skip the row");
	is_str(table(NULL, "epoch\tloss\n1\t2\n", 0), "loss 1 2\n", "tab separated");
	is_str(table(NULL, "[2024-01-01][main][INFO] - starting, epoch 1\n1,2\n", 0), "",
	       "a log line is no header");
	is_str(table(NULL, "loss\n1\n", 0), "", "one column is no table");
	is_str(table(NULL, "a,b\n1,2\n", 0), "", "no step or epoch column");
	is_str(table(NULL, "step,loss\n0,1", 0), "", "an unfinished last line waits");
	is_str(table(NULL, "step,loss,extra\n0,1\n1,2,3,4\n", 0), "loss 0 1\nloss 1 2\nextra 1 3\n",
	       "short and long rows");
	is_str(table(NULL, "step,(),/x,b\n0,1,2,3\n", 0),
	       "! column '/x' gives no valid MLflow key: left out\nb 0 3\n",
	       "columns with no key: left out, a refused one noted");

	{
		struct ingest_table t;
		char *big = malloc(INGEST_LINE_MAX + 2);

		buf_reset(&got);
		ingest_table_init(&t, NULL);
		ingest_table_feed(&t, "step,x\n", 7, &sink);
		memset(big, '1', INGEST_LINE_MAX + 1);
		ok(ingest_table_feed(&t, big, INGEST_LINE_MAX + 1, &sink) == 1 && t.stopped,
		   "a row longer than the bound stops the table");
		ok(strstr(buf_str(&got), "longer than") != NULL, "... with a note");
		ok(ingest_table_feed(&t, "0,1\n", 4, &sink) == 1 && !strstr(buf_str(&got), "x 0"),
		   "... and nothing after it is parsed");
		/* Lightning's rewrite: truncated, a new header with a new column. */
		ingest_table_reset(&t);
		buf_reset(&got);
		{
			static const char again[] = "epoch,step,train_loss,val_acc\r\n"
						    "0,49,0.9,\r\n0,49,,0.7\r\n";

			ingest_table_feed(&t, again, strlen(again), &sink);
		}
		is_str(buf_str(&got), "epoch 49 0\ntrain_loss 49 0.9\nepoch 49 0\nval_acc 49 0.7\n",
		       "after a reset the new header counts");
		ingest_table_release(&t);
		free(big);
	}
	{
		/* The same row whole in one write: the same fate. */
		struct buf text = BUF_INIT;
		size_t k;

		buf_adds(&text, "step,x\n0,");
		for (k = 0; k < INGEST_LINE_MAX; k++)
			buf_addch(&text, '1');
		buf_adds(&text, "\n1,2\n");
		ok(strstr(table(NULL, buf_str(&text), 0), "longer than") &&
			   !strstr(buf_str(&got), "x 1 2"),
		   "a complete row longer than the bound stops the table too");
		buf_release(&text);
	}
	{
		struct ingest_table t;
		char *big = malloc(INGEST_LINE_MAX + 2);

		buf_reset(&got);
		ingest_table_init(&t, NULL);
		memset(big, 'x', INGEST_LINE_MAX + 1);
		ok(ingest_table_feed(&t, big, INGEST_LINE_MAX + 1, &sink) == 1 && !got.len,
		   "a first line past the bound: not a table, no note");
		ingest_table_release(&t);
		free(big);
	}
}

static const char *whole(int (*fn)(const char *, size_t, const struct ingest_sink *),
			 const char *text, int *err)
{
	buf_reset(&got);
	*err = fn(text, strlen(text), &sink);
	return buf_str(&got);
}

static const char trainer_state[] = "{\n"
				    "  \"best_metric\": null,\n"
				    "  \"epoch\": 1.0,\n"
				    "  \"global_step\": 10,\n"
				    "  \"log_history\": [\n"
				    "    {\n"
				    "      \"epoch\": 0.5,\n"
				    "      \"grad_norm\": 3.25,\n"
				    "      \"learning_rate\": 5e-05,\n"
				    "      \"loss\": 0.6931,\n"
				    "      \"step\": 5\n"
				    "    },\n"
				    "    {\n"
				    "      \"epoch\": 1.0,\n"
				    "      \"eval_loss\": 0.5,\n"
				    "      \"eval_runtime\": 0.1,\n"
				    "      \"step\": 10\n"
				    "    },\n"
				    "    {\n"
				    "      \"epoch\": 1.0,\n"
				    "      \"step\": 10,\n"
				    "      \"total_flos\": 1024,\n"
				    "      \"train_loss\": 0.6,\n"
				    "      \"train_runtime\": 1.5\n"
				    "    },\n"
				    "    { \"loss\": 1, \"step\": 2.5 }\n"
				    "  ],\n"
				    "  \"max_steps\": 10\n"
				    "}\n";
static const char trainer_want[] = "epoch 5 0.5\ngrad_norm 5 3.25\nlearning_rate 5 5e-05\n"
				   "loss 5 0.6931\nepoch 10 1\neval_loss 10 0.5\n"
				   "eval_runtime 10 0.1\nepoch 10 1\ntotal_flos 10 1024\n"
				   "train_loss 10 0.6\ntrain_runtime 10 1.5\n";

/* Lightning's hparams.yaml through OmegaConf: nested, in insertion order. */
static const char hparams[] = "lr: 0.001\n"
			      "model:\n"
			      "  hidden: 64\n"
			      "  layers:\n"
			      "  - 32\n"
			      "  - 16\n"
			      "  act: relu\n"
			      "optimizer: null\n"
			      "dropout: ~\n"
			      "name: 'run (1)'\n"
			      "empty: {}\n"
			      "flags: [a, b]\n"
			      "note: \"0.10\"\n";
static const char hparams_want[] = "lr=0.001\nmodel.hidden=64\nmodel.layers.0=32\n"
				   "model.layers.1=16\nmodel.act=relu\noptimizer=None\n"
				   "dropout=None\nname=run (1)\nflags.0=a\nflags.1=b\nnote=0.10\n";

/* Hydra's .hydra/config.yaml: interpolations and ??? stay text. */
static const char hydra[] = "model:\n"
			    "  dim: 128\n"
			    "  head_dim: ${model.dim}\n"
			    "optimizer:\n"
			    "  lr: 0.01\n"
			    "seed: ???\n"
			    "data:\n"
			    "  - name: mnist\n"
			    "    path: /data/mnist\n";
static const char hydra_want[] = "model.dim=128\nmodel.head_dim=${model.dim}\noptimizer.lr=0.01\n"
				 "seed=???\ndata.0.name=mnist\ndata.0.path=/data/mnist\n";

/* YOLO's args.yaml: flat, PyYAML safe_dump. */
static const char yolo_args[] = "task: detect\nmode: train\nmodel: yolo11n.pt\nepochs: 3\n"
				"batch: 16\nimgsz: 640\nlr0: 0.01\nsave_dir: runs/detect/train\n"
				"cache: false\n";
static const char yolo_args_want[] = "task=detect\nmode=train\nmodel=yolo11n.pt\nepochs=3\n"
				     "batch=16\nimgsz=640\nlr0=0.01\nsave_dir=runs/detect/train\n"
				     "cache=false\n";

static const char config_json[] = "{\n  \"architectures\": [\"BertModel\"],\n"
				  "  \"hidden_size\": 768,\n  \"id2label\": {\"0\": \"NEG\"},\n"
				  "  \"layer_norm_eps\": 1e-12,\n  \"pad_token_id\": null,\n"
				  "  \"tie\": true\n}\n";
static const char config_json_want[] = "architectures.0=BertModel\nhidden_size=768\n"
				       "id2label.0=NEG\nlayer_norm_eps=1e-12\n"
				       "pad_token_id=None\ntie=true\n";

/* dvclive's metrics.json: '/' in names nests, a top-level step. */
static const char dvclive_json[] = "{\n    \"train\": {\n        \"loss\": 0.25,\n"
				   "        \"acc\": 0.5\n    },\n    \"lr\": 0.1,\n"
				   "    \"name\": \"x\",\n    \"step\": 4\n}\n";
static const char dvclive_json_want[] = "train/loss 4 0.25\ntrain/acc 4 0.5\nlr 4 0.1\n";

static void test_whole(void)
{
	int err;

	is_str(whole(ingest_trainer_state, trainer_state, &err), trainer_want,
	       "trainer_state.json: log_history at each step, epoch a metric");
	is_int(err, 0, "... parsed");
	is_str(whole(ingest_yaml_params, hparams, &err), hparams_want, "hparams.yaml flattened");
	is_int(err, 0, "... parsed");
	is_str(whole(ingest_yaml_params, hydra, &err), hydra_want, ".hydra/config.yaml flattened");
	is_str(whole(ingest_yaml_params, yolo_args, &err), yolo_args_want, "YOLO args.yaml");
	is_str(whole(ingest_json_params, config_json, &err), config_json_want,
	       "config.json flattened");
	is_str(whole(ingest_metrics_json, dvclive_json, &err), dvclive_json_want,
	       "dvclive metrics.json at its step");
	is_str(whole(ingest_metrics_json, "{\"a\": {\"b\": 1}}", &err), "a/b 0 1\n",
	       "metrics.json without a step: step 0");
	whole(ingest_yaml_params, "a: [1, 2\nb: c\n", &err);
	is_int(err, -EINVAL, "broken YAML: EINVAL");
	ok(strncmp(buf_str(&got), "! not YAML", 10) == 0, "... with a note");
	whole(ingest_json_params, "{\"a\": ", &err);
	is_int(err, -EINVAL, "broken JSON: EINVAL");
	if (!ok(strncmp(buf_str(&got), "! not JSON", 10) == 0, "... with a note"))
		tap_diag("got '%s'", buf_str(&got));
	is_str(whole(ingest_yaml_params, "just text\n", &err), "", "a YAML scalar: no params");
	is_str(whole(ingest_yaml_params, "a: 1\n---\nb: 2\n", &err), "a=1\n",
	       "the first YAML document only");
	is_str(whole(ingest_yaml_params, "base: &b 1\ncopy: *b\n? [x]\n: 1\n", &err),
	       "! a mapping or list as a key: the file is not parsed\n",
	       "a complex key: nothing logged, not even what came before");
	is_str(whole(ingest_yaml_params, "base: &b 1\ncopy: *b\nlast: 2\n", &err),
	       "base=1\nlast=2\n", "an alias is left out");
}

int main(void)
{
	test_recognise();
	test_keys();
	test_tables();
	test_whole();
	buf_release(&got);
	return tap_done();
}
