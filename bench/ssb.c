/* ssb.c - the Star Schema Benchmark generator (see ssb.h) and `fbench ssb`. */
#include "ssb.h"

#include "fbench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- value domains --------------------------------------------------------------------------------- */

/* TPC-H's 25 nations with their regions (the order of TPC-H's nation keys). */
static const struct {
    const char *nation;
    int region;
} nations[25] = {
    {"ALGERIA", 0},   {"ARGENTINA", 1},    {"BRAZIL", 1},         {"CANADA", 1},        {"EGYPT", 4},
    {"ETHIOPIA", 0},  {"FRANCE", 3},       {"GERMANY", 3},        {"INDIA", 2},         {"INDONESIA", 2},
    {"IRAN", 4},      {"IRAQ", 4},         {"JAPAN", 2},          {"JORDAN", 4},        {"KENYA", 0},
    {"MOROCCO", 0},   {"MOZAMBIQUE", 0},   {"PERU", 1},           {"CHINA", 2},         {"ROMANIA", 3},
    {"SAUDI ARABIA", 4}, {"VIETNAM", 2},   {"RUSSIA", 3},         {"UNITED KINGDOM", 3}, {"UNITED STATES", 1},
};
static const char *regions[5] = {"AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"};
static const char *segments[5] = {"AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"};
static const char *priorities[5] = {"1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECI", "5-LOW"};
static const char *shipmodes[7] = {"AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"};
static const char *month_names[12] = {"January", "February", "March",     "April",   "May",      "June",
                                      "July",    "August",   "September", "October", "November", "December"};
static const char *day_names[7] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

#define SSB_DAYS 2556
#define SSB_ORDER_DAYS (SSB_DAYS - 151) /* orders up to TPC-H's end date minus 151 days */

/* ---- dictionaries ---------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sorted, distinct dictionary from n candidate strings (copied). NULL on no memory. */
static ssb_dict *dict_make(const char *const *cand, int32_t n)
{
    ssb_dict *d = calloc(1, sizeof *d);
    char **v = calloc((size_t)(n ? n : 1), sizeof *v);
    if (!d || !v) {
        free(d);
        free(v);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++)
        if (!(v[i] = strdup(cand[i]))) {
            for (int32_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            free(d);
            return NULL;
        }
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (m && strcmp(v[m - 1], v[i]) == 0)
            free(v[i]);
        else
            v[m++] = v[i];
    }
    d->n = m;
    d->values = v;
    return d;
}

static void dict_free(ssb_dict *d)
{
    if (!d)
        return;
    for (int32_t i = 0; i < d->n; i++)
        free(d->values[i]);
    free(d->values);
    free(d);
}

static int32_t dict_code(const ssb_dict *d, const char *s)
{
    const char *key = s;
    char **hit = bsearch(&key, d->values, (size_t)d->n, sizeof *d->values, cmp_str);
    return hit ? (int32_t)(hit - d->values) : -1;
}

static void city_name(char *buf, size_t size, int nation, int digit)
{
    snprintf(buf, size, "%-9.9s%d", nations[nation].nation, digit);
}

/* ---- building tables ------------------------------------------------------------------------------- */

typedef struct gen {
    ssb_data *d;
    int failed;
} gen;

static void *add_column(gen *g, ssb_table *t, const char *name, fb_type type, ssb_dict *dict)
{
    if (g->failed)
        return NULL;
    size_t bytes = (size_t)(t->rows ? t->rows : 1) * fb_type_width(type);
    void *p = fbench_alloc_pages(bytes);
    if (!p || t->n_columns == SSB_MAX_COLUMNS) {
        fprintf(stderr, "fbench ssb: no memory for %s.%s (%zu bytes)\n", t->name, name, bytes);
        fbench_free_pages(p, bytes);
        dict_free(dict);
        g->failed = 1;
        return NULL;
    }
    ssb_column *c = &t->columns[t->n_columns++];
    c->name = name;
    c->type = type;
    c->data = p;
    c->dict = dict;
    return p;
}

static ssb_dict *dict_or_fail(gen *g, const char *const *cand, int32_t n)
{
    if (g->failed)
        return NULL;
    ssb_dict *d = dict_make(cand, n);
    if (!d) {
        fprintf(stderr, "fbench ssb: no memory for a dictionary\n");
        g->failed = 1;
    }
    return d;
}

static ssb_dict *city_dict(gen *g)
{
    char names[250][16];
    const char *cand[250];
    for (int n = 0; n < 25; n++)
        for (int c = 0; c < 10; c++) {
            city_name(names[n * 10 + c], sizeof names[0], n, c);
            cand[n * 10 + c] = names[n * 10 + c];
        }
    return dict_or_fail(g, cand, 250);
}

static ssb_dict *nation_dict(gen *g)
{
    const char *cand[25];
    for (int n = 0; n < 25; n++)
        cand[n] = nations[n].nation;
    return dict_or_fail(g, cand, 25);
}

/* customer and supplier share their geography columns: names = key, city, nation, region. */
static void gen_geo(gen *g, ssb_table *t, const char *const names[4], uint64_t seed, int with_segment)
{
    int32_t *key = add_column(g, t, names[0], FB_TYPE_INT32, NULL);
    ssb_dict *cd = city_dict(g);
    int32_t *city = add_column(g, t, names[1], FB_TYPE_INT32, cd);
    ssb_dict *nd = nation_dict(g);
    int32_t *nation = add_column(g, t, names[2], FB_TYPE_INT32, nd);
    ssb_dict *rd = dict_or_fail(g, regions, 5);
    int32_t *region = add_column(g, t, names[3], FB_TYPE_INT32, rd);
    ssb_dict *sd = with_segment ? dict_or_fail(g, segments, 5) : NULL;
    int32_t *segment = with_segment ? add_column(g, t, "c_mktsegment", FB_TYPE_INT32, sd) : NULL;
    if (g->failed)
        return;
    uint64_t s = seed;
    for (int64_t i = 0; i < t->rows; i++) {
        int n = (int)(fbench_splitmix64(&s) % 25), c = (int)(fbench_splitmix64(&s) % 10);
        char buf[16];
        city_name(buf, sizeof buf, n, c);
        key[i] = (int32_t)(i + 1);
        city[i] = dict_code(cd, buf);
        nation[i] = dict_code(nd, nations[n].nation);
        region[i] = dict_code(rd, regions[nations[n].region]);
        if (segment)
            segment[i] = (int32_t)(fbench_splitmix64(&s) % 5);
    }
}

static void gen_part(gen *g, ssb_table *t, uint64_t seed)
{
    char mf[5][8], cat[25][8], br[1000][12];
    const char *cm[5], *cc[25], *cb[1000];
    for (int m = 0; m < 5; m++) {
        snprintf(mf[m], sizeof mf[m], "MFGR#%d", m + 1);
        cm[m] = mf[m];
        for (int c = 0; c < 5; c++) {
            snprintf(cat[m * 5 + c], sizeof cat[0], "MFGR#%d%d", m + 1, c + 1);
            cc[m * 5 + c] = cat[m * 5 + c];
            for (int b = 0; b < 40; b++) {
                snprintf(br[(m * 5 + c) * 40 + b], sizeof br[0], "MFGR#%d%d%d", m + 1, c + 1, b + 1);
                cb[(m * 5 + c) * 40 + b] = br[(m * 5 + c) * 40 + b];
            }
        }
    }
    int32_t *key = add_column(g, t, "p_partkey", FB_TYPE_INT32, NULL);
    ssb_dict *dm = dict_or_fail(g, cm, 5);
    int32_t *mfgr = add_column(g, t, "p_mfgr", FB_TYPE_INT32, dm);
    ssb_dict *dc = dict_or_fail(g, cc, 25);
    int32_t *category = add_column(g, t, "p_category", FB_TYPE_INT32, dc);
    ssb_dict *db = dict_or_fail(g, cb, 1000);
    int32_t *brand = add_column(g, t, "p_brand1", FB_TYPE_INT32, db);
    int32_t *size = add_column(g, t, "p_size", FB_TYPE_INT32, NULL);
    if (g->failed)
        return;
    uint64_t s = seed;
    for (int64_t i = 0; i < t->rows; i++) {
        int m = (int)(fbench_splitmix64(&s) % 5), c = (int)(fbench_splitmix64(&s) % 5),
            b = (int)(fbench_splitmix64(&s) % 40);
        key[i] = (int32_t)(i + 1);
        mfgr[i] = dict_code(dm, mf[m]);
        category[i] = dict_code(dc, cat[m * 5 + c]);
        brand[i] = dict_code(db, br[(m * 5 + c) * 40 + b]);
        size[i] = (int32_t)(1 + fbench_splitmix64(&s) % 50);
    }
}

/* Day i (0 = 1992-01-01) as year, month (1..12), day of month, day of year (1..), weekday (0 = Sunday). */
static void civil_day(int i, int *y, int *m, int *d, int *doy, int *wday)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = 1992, day = i;
    for (;;) {
        int len = (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 366 : 365;
        if (day < len)
            break;
        day -= len;
        year++;
    }
    *doy = day + 1;
    int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    int month = 0;
    while (day >= mdays[month] + (month == 1 && leap)) {
        day -= mdays[month] + (month == 1 && leap);
        month++;
    }
    *y = year;
    *m = month + 1;
    *d = day + 1;
    *wday = (3 + i) % 7; /* 1992-01-01 was a Wednesday */
}

static int32_t datekey_of_day(int i)
{
    int y, m, d, doy, w;
    civil_day(i, &y, &m, &d, &doy, &w);
    return (int32_t)(y * 10000 + m * 100 + d);
}

static const char *season_of(int month)
{
    return month == 12 ? "Christmas" : month <= 2 ? "Winter" : month <= 5 ? "Spring" : month <= 8 ? "Summer" : "Fall";
}

static void gen_date(gen *g, ssb_table *t)
{
    char ym[84][8];
    const char *cym[84];
    for (int y = 0; y < 7; y++)
        for (int m = 0; m < 12; m++) {
            snprintf(ym[y * 12 + m], sizeof ym[0], "%.3s%d", month_names[m], 1992 + y);
            cym[y * 12 + m] = ym[y * 12 + m];
        }
    static const char *seasons[5] = {"Christmas", "Fall", "Spring", "Summer", "Winter"};
    int32_t *key = add_column(g, t, "d_datekey", FB_TYPE_INT32, NULL);
    ssb_dict *dw = dict_or_fail(g, day_names, 7);
    int32_t *dow = add_column(g, t, "d_dayofweek", FB_TYPE_INT32, dw);
    ssb_dict *dmo = dict_or_fail(g, month_names, 12);
    int32_t *month = add_column(g, t, "d_month", FB_TYPE_INT32, dmo);
    int32_t *year = add_column(g, t, "d_year", FB_TYPE_INT32, NULL);
    int32_t *ymnum = add_column(g, t, "d_yearmonthnum", FB_TYPE_INT32, NULL);
    ssb_dict *dym = dict_or_fail(g, cym, 84);
    int32_t *yearmonth = add_column(g, t, "d_yearmonth", FB_TYPE_INT32, dym);
    int32_t *dayinweek = add_column(g, t, "d_daynuminweek", FB_TYPE_INT32, NULL);
    int32_t *dayinmonth = add_column(g, t, "d_daynuminmonth", FB_TYPE_INT32, NULL);
    int32_t *dayinyear = add_column(g, t, "d_daynuminyear", FB_TYPE_INT32, NULL);
    int32_t *monthinyear = add_column(g, t, "d_monthnuminyear", FB_TYPE_INT32, NULL);
    int32_t *week = add_column(g, t, "d_weeknuminyear", FB_TYPE_INT32, NULL);
    ssb_dict *dse = dict_or_fail(g, seasons, 5);
    int32_t *season = add_column(g, t, "d_sellingseason", FB_TYPE_INT32, dse);
    int32_t *lastweek = add_column(g, t, "d_lastdayinweekfl", FB_TYPE_INT32, NULL);
    int32_t *lastmonth = add_column(g, t, "d_lastdayinmonthfl", FB_TYPE_INT32, NULL);
    int32_t *holiday = add_column(g, t, "d_holidayfl", FB_TYPE_INT32, NULL);
    int32_t *weekday = add_column(g, t, "d_weekdayfl", FB_TYPE_INT32, NULL);
    if (g->failed)
        return;
    for (int i = 0; i < SSB_DAYS; i++) {
        int y, m, d, doy, w;
        civil_day(i, &y, &m, &d, &doy, &w);
        int ny, nm, nd, ndoy, nw;
        civil_day(i + 1, &ny, &nm, &nd, &ndoy, &nw);
        char buf[8];
        snprintf(buf, sizeof buf, "%.3s%d", month_names[m - 1], y);
        key[i] = (int32_t)(y * 10000 + m * 100 + d);
        dow[i] = dict_code(dw, day_names[w]);
        month[i] = dict_code(dmo, month_names[m - 1]);
        year[i] = y;
        ymnum[i] = y * 100 + m;
        yearmonth[i] = dict_code(dym, buf);
        dayinweek[i] = w + 1;
        dayinmonth[i] = d;
        dayinyear[i] = doy;
        monthinyear[i] = m;
        week[i] = (doy - 1) / 7 + 1;
        season[i] = dict_code(dse, season_of(m));
        lastweek[i] = w == 6;
        lastmonth[i] = nm != m;
        holiday[i] = (m == 12 && d == 25) || (m == 1 && d == 1) || (m == 7 && d == 4) || (m == 11 && d == 11);
        weekday[i] = w >= 1 && w <= 5;
    }
}

/* TPC-H's retail price of a part, in cents. */
static int32_t retail_price(int64_t partkey)
{
    return (int32_t)(90000 + ((partkey / 10) % 20001) + 100 * (partkey % 1000));
}

static void gen_lineorder(gen *g, ssb_table *t, int64_t customers, int64_t parts, int64_t suppliers, uint64_t seed)
{
    int32_t *orderkey = add_column(g, t, "lo_orderkey", FB_TYPE_INT32, NULL);
    int32_t *linenumber = add_column(g, t, "lo_linenumber", FB_TYPE_INT32, NULL);
    int32_t *custkey = add_column(g, t, "lo_custkey", FB_TYPE_INT32, NULL);
    int32_t *partkey = add_column(g, t, "lo_partkey", FB_TYPE_INT32, NULL);
    int32_t *suppkey = add_column(g, t, "lo_suppkey", FB_TYPE_INT32, NULL);
    int32_t *orderdate = add_column(g, t, "lo_orderdate", FB_TYPE_INT32, NULL);
    ssb_dict *dp = dict_or_fail(g, priorities, 5);
    int32_t *priority = add_column(g, t, "lo_orderpriority", FB_TYPE_INT32, dp);
    int32_t *shippriority = add_column(g, t, "lo_shippriority", FB_TYPE_INT32, NULL);
    int32_t *quantity = add_column(g, t, "lo_quantity", FB_TYPE_INT32, NULL);
    int32_t *extprice = add_column(g, t, "lo_extendedprice", FB_TYPE_INT32, NULL);
    int32_t *totalprice = add_column(g, t, "lo_ordtotalprice", FB_TYPE_INT32, NULL);
    int32_t *discount = add_column(g, t, "lo_discount", FB_TYPE_INT32, NULL);
    int32_t *revenue = add_column(g, t, "lo_revenue", FB_TYPE_INT32, NULL);
    int32_t *supplycost = add_column(g, t, "lo_supplycost", FB_TYPE_INT32, NULL);
    int32_t *tax = add_column(g, t, "lo_tax", FB_TYPE_INT32, NULL);
    int32_t *commitdate = add_column(g, t, "lo_commitdate", FB_TYPE_INT32, NULL);
    ssb_dict *dm = dict_or_fail(g, shipmodes, 7);
    int32_t *shipmode = add_column(g, t, "lo_shipmode", FB_TYPE_INT32, dm);
    if (g->failed)
        return;
    int32_t datekeys[SSB_DAYS];
    for (int i = 0; i < SSB_DAYS; i++)
        datekeys[i] = datekey_of_day(i);
    uint64_t s = seed;
    double t0 = fbench_now(), last = t0;
    int64_t row = 0;
    for (int32_t order = 1; row < t->rows; order++) {
        int lines = (int)(1 + fbench_splitmix64(&s) % 7);
        if (lines > t->rows - row)
            lines = (int)(t->rows - row);
        int32_t ck = (int32_t)(1 + fbench_splitmix64(&s) % (uint64_t)customers);
        int day = (int)(fbench_splitmix64(&s) % SSB_ORDER_DAYS);
        int32_t pr = (int32_t)(fbench_splitmix64(&s) % 5);
        int64_t total = 0, first = row;
        for (int l = 0; l < lines; l++, row++) {
            int64_t pk = (int64_t)(1 + fbench_splitmix64(&s) % (uint64_t)parts);
            int32_t q = (int32_t)(1 + fbench_splitmix64(&s) % 50), dsc = (int32_t)(fbench_splitmix64(&s) % 11);
            int32_t price = retail_price(pk);
            orderkey[row] = order;
            linenumber[row] = l + 1;
            custkey[row] = ck;
            partkey[row] = (int32_t)pk;
            suppkey[row] = (int32_t)(1 + fbench_splitmix64(&s) % (uint64_t)suppliers);
            orderdate[row] = datekeys[day];
            priority[row] = pr;
            shippriority[row] = 0;
            quantity[row] = q;
            extprice[row] = q * price;
            discount[row] = dsc;
            revenue[row] = (int32_t)((int64_t)extprice[row] * (100 - dsc) / 100);
            supplycost[row] = 6 * price / 10;
            tax[row] = (int32_t)(fbench_splitmix64(&s) % 9);
            commitdate[row] = datekeys[day + 30 + (int)(fbench_splitmix64(&s) % 61)];
            shipmode[row] = (int32_t)(fbench_splitmix64(&s) % 7);
            total += (int64_t)extprice[row] * (100 - dsc) / 100 * (100 + tax[row]) / 100;
        }
        for (int64_t r = first; r < row; r++)
            totalprice[r] = (int32_t)(total > INT32_MAX ? INT32_MAX : total);
        if ((order & 0xFFFF) == 0 && fbench_now() - last > 1.0) {
            last = fbench_now();
            fprintf(stderr, "fbench ssb: lineorder %.0f%%\n", 100.0 * (double)row / (double)t->rows);
        }
    }
}

static int64_t scaled(double base, double sf)
{
    int64_t n = llround(base * sf);
    return n < 1 ? 1 : n;
}

int ssb_generate(double sf, uint64_t seed, ssb_data *out)
{
    memset(out, 0, sizeof *out);
    if (!(sf > 0)) {
        fprintf(stderr, "fbench ssb: the scale factor must be > 0\n");
        return -1;
    }
    out->sf = sf;
    out->seed = seed;
    ssb_table *t = out->tables;
    t[SSB_LINEORDER].name = "lineorder";
    t[SSB_LINEORDER].rows = scaled(6000000, sf);
    t[SSB_CUSTOMER].name = "customer";
    t[SSB_CUSTOMER].rows = scaled(30000, sf);
    t[SSB_SUPPLIER].name = "supplier";
    t[SSB_SUPPLIER].rows = scaled(2000, sf);
    t[SSB_PART].name = "part";
    /* 200,000 x (1 + floor(log2 SF)); below SF 1 (test scales) linear in SF. */
    t[SSB_PART].rows = sf >= 1 ? 200000 * (1 + (int64_t)floor(log2(sf))) : scaled(200000, sf);
    t[SSB_DATE].name = "date";
    t[SSB_DATE].rows = SSB_DAYS;
    gen g = {out, 0};
    static const char *const cnames[4] = {"c_custkey", "c_city", "c_nation", "c_region"};
    static const char *const snames[4] = {"s_suppkey", "s_city", "s_nation", "s_region"};
    gen_geo(&g, &t[SSB_CUSTOMER], cnames, seed ^ 0xC0570000ull, 1);
    gen_geo(&g, &t[SSB_SUPPLIER], snames, seed ^ 0x5A991000ull, 0);
    gen_part(&g, &t[SSB_PART], seed ^ 0x9A870000ull);
    gen_date(&g, &t[SSB_DATE]);
    gen_lineorder(&g, &t[SSB_LINEORDER], t[SSB_CUSTOMER].rows, t[SSB_PART].rows, t[SSB_SUPPLIER].rows,
                  seed ^ 0x11E0000ull);
    if (g.failed) {
        ssb_free(out);
        return -1;
    }
    return 0;
}

void ssb_free(ssb_data *d)
{
    for (int i = 0; i < SSB_N_TABLES; i++) {
        ssb_table *t = &d->tables[i];
        for (int c = 0; c < t->n_columns; c++) {
            fbench_free_pages(t->columns[c].data, (size_t)(t->rows ? t->rows : 1) * fb_type_width(t->columns[c].type));
            dict_free(t->columns[c].dict);
        }
        t->n_columns = 0;
    }
}

const ssb_column *ssb_find(const ssb_table *t, const char *name)
{
    for (int c = 0; c < t->n_columns; c++)
        if (strcmp(t->columns[c].name, name) == 0)
            return &t->columns[c];
    return NULL;
}

/* ---- dump and the command -------------------------------------------------------------------------- */

int ssb_dump(const ssb_data *d, const char *dir)
{
    char path[4096];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *m = fopen(path, "w");
    if (!m) {
        fprintf(stderr, "fbench ssb: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(m, "{\n  \"workload\": \"ssb\",\n  \"scale\": %g,\n  \"seed\": %llu,\n  \"byte_order\": \"little\",\n"
               "  \"tables\": [",
            d->sf, (unsigned long long)d->seed);
    int bad = 0;
    for (int i = 0; i < SSB_N_TABLES && !bad; i++) {
        const ssb_table *t = &d->tables[i];
        fprintf(m, "%s\n    {\"name\": \"%s\", \"rows\": %lld, \"columns\": [", i ? "," : "", t->name,
                (long long)t->rows);
        for (int c = 0; c < t->n_columns && !bad; c++) {
            const ssb_column *col = &t->columns[c];
            char name[160];
            snprintf(name, sizeof name, "%s.%s.bin", col->name, fb_type_name(col->type));
            bad = fbench_write_file(dir, name, col->data, (size_t)t->rows * fb_type_width(col->type)) != 0;
            fprintf(m, "%s\n      {\"name\": \"%s\", \"type\": \"%s\", \"file\": \"%s.%s.bin\", \"validity\": null",
                    c ? "," : "", col->name, fb_type_name(col->type), col->name, fb_type_name(col->type));
            if (col->dict && !bad) {
                snprintf(path, sizeof path, "%s/%s.dict.txt", dir, col->name);
                FILE *f = fopen(path, "w");
                bad = !f;
                for (int32_t k = 0; !bad && k < col->dict->n; k++)
                    bad = fprintf(f, "%s\n", col->dict->values[k]) < 0;
                if (f && fclose(f) != 0)
                    bad = 1;
                fprintf(m, ", \"dictionary\": \"%s.dict.txt\"", col->name);
            }
            fprintf(m, "}");
        }
        fprintf(m, "]}");
    }
    fprintf(m, "\n  ],\n  \"fb_version\": \"%s\"\n}\n", fb_version_string());
    if (fclose(m) != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "fbench ssb: writing %s failed: %s\n", dir, strerror(errno));
    return bad ? -1 : 0;
}

int fbench_ssb_main(int argc, char **argv)
{
    double sf = 1.0;
    long seed = 42;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("usage: fbench ssb [--sf N] [--seed S] --dump DIR\n"
                   "  generates the Star Schema Benchmark tables at scale factor N (default 1; fractions for\n"
                   "  small test data) and writes them to DIR as raw columns, dictionaries and manifest.json\n"
                   "  (bench/peers/duckdb_peer.py DIR --sql bench/peers/ssb.sql runs the 13 queries on them).\n");
            return FBENCH_EXIT_OK;
        }
        if (!v) {
            fprintf(stderr, "fbench ssb: %s needs a value\n", a);
            return FBENCH_EXIT_USAGE;
        }
        i++;
        char *end = NULL;
        if (strcmp(a, "--sf") == 0) {
            sf = strtod(v, &end);
            if (!end || *end || !(sf > 0 && sf <= 1000)) {
                fprintf(stderr, "fbench ssb: --sf must be in (0, 1000], got '%s'\n", v);
                return FBENCH_EXIT_USAGE;
            }
        } else if (strcmp(a, "--seed") == 0) {
            if (fbench_parse_int(v, 0, 0x7FFFFFFFFFFFFFFFL, &seed) != 0) {
                fprintf(stderr, "fbench ssb: bad --seed '%s'\n", v);
                return FBENCH_EXIT_USAGE;
            }
        } else if (strcmp(a, "--dump") == 0) {
            dump = v;
        } else {
            fprintf(stderr, "fbench ssb: unknown option %s\n", a);
            return FBENCH_EXIT_USAGE;
        }
    }
    if (!dump) {
        fprintf(stderr, "fbench ssb: --dump DIR is required\n");
        return FBENCH_EXIT_USAGE;
    }
    ssb_data d;
    double t0 = fbench_now();
    if (ssb_generate(sf, (uint64_t)seed, &d) != 0)
        return FBENCH_EXIT_FAILURE;
    fprintf(stderr, "fbench ssb: SF %g generated in %.1f s (lineorder %lld rows)\n", sf, fbench_now() - t0,
            (long long)d.tables[SSB_LINEORDER].rows);
    int rc = ssb_dump(&d, dump);
    ssb_free(&d);
    return rc ? FBENCH_EXIT_FAILURE : FBENCH_EXIT_OK;
}
