/* ssb.h - the Star Schema Benchmark's tables (O'Neil, O'Neil, Chen: "Star Schema Benchmark", rev. 3),
 * generated from a seed, with strings dictionary-encoded (int32 codes into a sorted dictionary, so code
 * order is string order and range predicates on strings become range predicates on codes).
 *
 * Sizes at scale factor SF: lineorder 6,000,000 x SF rows (orders of 1..7 lines), customer 30,000 x SF,
 * supplier 2,000 x SF, part 200,000 x (1 + floor(log2 SF)) (at least 200,000), date 2,556 days from
 * 1992-01-01. Value domains follow the specification (TPC-H's nations and regions, cities as the nation's
 * first 9 characters + a digit, MFGR#m / MFGR#mc / MFGR#mcb part hierarchy, prices from TPC-H's retail
 * price formula). Columns no SSB query reads (names, addresses, phones, comments) are left out. */
#ifndef FBENCH_SSB_H
#define FBENCH_SSB_H

#include <stdint.h>
#include <stdio.h>

#include "fb/fb.h"

/** A string dictionary: code i stands for values[i]; the values are sorted and distinct. */
typedef struct ssb_dict {
    int32_t n;
    char **values;
} ssb_dict;

/** One column: int32 or int64 values; a string column has int32 codes and its dictionary. */
typedef struct ssb_column {
    const char *name;
    fb_type type;
    void *data;
    ssb_dict *dict; /**< NULL unless a dictionary-encoded string column */
} ssb_column;

#define SSB_MAX_COLUMNS 20

/** One table. */
typedef struct ssb_table {
    const char *name;
    int64_t rows;
    int n_columns;
    ssb_column columns[SSB_MAX_COLUMNS];
} ssb_table;

enum { SSB_LINEORDER, SSB_CUSTOMER, SSB_SUPPLIER, SSB_PART, SSB_DATE, SSB_N_TABLES };

/** The five tables. */
typedef struct ssb_data {
    double sf;
    uint64_t seed;
    ssb_table tables[SSB_N_TABLES];
} ssb_data;

/** \brief Generates the tables at scale factor sf (> 0; fractions scale the row counts) from seed,
 * printing progress to stderr on long runs. \return 0, or -1 when memory ran out (a message is printed). */
int ssb_generate(double sf, uint64_t seed, ssb_data *out);

/** \brief Frees what ssb_generate() made. */
void ssb_free(ssb_data *d);

/** \brief A column of a table by name, or NULL. */
const ssb_column *ssb_find(const ssb_table *t, const char *name);

/** \brief Writes every table as raw little-endian column files plus dictionaries (one value per line,
 * code order) and DIR/manifest.json (the format of fbench run --dump, with "dictionary" per string
 * column). \return 0, or -1 (a message is printed). */
int ssb_dump(const ssb_data *d, const char *dir);

/** \brief `fbench ssb --sf N [--seed S] --dump DIR`: generates and writes the SSB tables. */
int fbench_ssb_main(int argc, char **argv);

/** \brief `fbench plan ssb ...`: the 13 SSB queries as fb plans (fbench_plan.c). */
int fbench_plan_main(int argc, char **argv);

#endif /* FBENCH_SSB_H */
