/* poe-gateway: MIT licence. Unit tests for src/config/seed.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../../../../src/config/seed.c"
#include "../../test.h"

static void write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");
    ok(fp != NULL && fputs(content, fp) >= 0 && fclose(fp) == 0);
}

static char *read_file(const char *path)
{
    static char buf[256];
    FILE *fp = fopen(path, "r");
    size_t n = fp != NULL ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
    if (fp != NULL)
        fclose(fp);
    buf[n] = '\0';
    return fp != NULL ? buf : NULL;
}

static void test_seed(void)
{
    char dir[] = "/tmp/pgw-unit-seed-XXXXXX", path[128], template[160], err[256] = "";
    ok(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/gateway.yaml", dir);
    snprintf(template, sizeof(template), "%s.template", path);

    /* no template: nothing made */
    is_int(pgw_config_seed(path, err, sizeof(err)), 0);
    ok(access(path, F_OK) != 0);

    /* the template is copied once, byte for byte, readable by the gateway's user */
    write_file(template, "model_list: []\n# shipped\n");
    is_int(pgw_config_seed(path, err, sizeof(err)), 1);
    is_str(read_file(path), "model_list: []\n# shipped\n");
    struct stat st;
    ok(stat(path, &st) == 0 && S_ISREG(st.st_mode));

    /* an existing file is the user's: never touched, even when the template changes */
    write_file(path, "model_list: []\n# mine\n");
    write_file(template, "model_list: []\n# shipped, newer\n");
    is_int(pgw_config_seed(path, err, sizeof(err)), 0);
    is_str(read_file(path), "model_list: []\n# mine\n");

    /* a dangling symlink counts as existing: it is not followed to create a file elsewhere */
    unlink(path);
    char elsewhere[160];
    snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere.yaml", dir);
    ok(symlink(elsewhere, path) == 0);
    is_int(pgw_config_seed(path, err, sizeof(err)), 0);
    ok(access(elsewhere, F_OK) != 0);
    unlink(path);

    /* a template that cannot be read (a directory): an error naming it, and no partial file left behind */
    char sub[160], subpath[200], subtemplate[220];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    snprintf(subpath, sizeof(subpath), "%s/gateway.yaml", sub);
    snprintf(subtemplate, sizeof(subtemplate), "%s.template", subpath);
    ok(mkdir(sub, 0700) == 0 && mkdir(subtemplate, 0700) == 0);
    is_int(pgw_config_seed(subpath, err, sizeof(err)), -1);
    ok(strncmp(err, subtemplate, strlen(subtemplate)) == 0);
    ok(access(subpath, F_OK) != 0);
    rmdir(subtemplate);
    rmdir(sub);
    unlink(template);
    unlink(elsewhere);
    rmdir(dir);
}

void test_src__seed_c(void)
{
    subtest("seed", test_seed);
}
