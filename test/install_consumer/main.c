/* main.c - a program outside fb's tree that uses the installed headers and library: selects the rows of
 * a small column with x > 2 and checks the answer. Exit status 0 when it is right. */
#include <fb/fb.h>

#include <stdio.h>

int main(void)
{
    fb_ctx *ctx = NULL;
    if (fb_ctx_create(NULL, &ctx) != FB_OK) {
        fprintf(stderr, "consumer: %s\n", fb_last_error(NULL));
        return 1;
    }
    const int32_t x[] = {5, -1, 3, 2, 9, 2, 0, 7};
    fb_column col = fb_column_make(FB_TYPE_INT32, x, 8, NULL);
    int32_t two = 2;
    uint32_t sel[8];
    int64_t n = -1;
    fb_status st = fb_select_cmp(ctx, &col, FB_CMP_GT, &two, NULL, 0, sel, 8, &n);
    int ok = st == FB_OK && n == 4 && sel[0] == 0 && sel[1] == 2 && sel[2] == 4 && sel[3] == 7;
    printf("consumer: fb %s, isa %s, select -> %lld rows: %s\n", fb_version_string(), fb_isa_name(fb_ctx_isa(ctx)),
           (long long)n, ok ? "right" : "WRONG");
    fb_ctx_destroy(ctx);
    return ok ? 0 : 1;
}
