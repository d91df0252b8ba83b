#include <stdio.h>
#include "calc.h"

/* Evaluates each argument (or each line of stdin) and prints the result. */
static int run(const char *line, StrBuf *out) {
  const char *error = NULL;
  Lexer lx;
  lexer_init(&lx, line);
  Node *n = parse_expr(&lx, &error);
  if (!error && lx.cur.kind != TOK_END) error = "unexpected input after the expression";
  double value = error ? 0 : eval(n, &error);
  node_free(n);
  if (error) { sb_addf(out, "error: %s\n", error); return 1; }
  sb_addf(out, "%g\n", value);
  return 0;
}

int main(int argc, char **argv) {
  StrBuf out;
  int failures = 0;
  sb_init(&out);
  if (argc > 1) {
    for (int i = 1; i < argc; i++) failures += run(argv[i], &out);
  } else {
    char line[1024];
    while (fgets(line, sizeof line, stdin)) failures += run(line, &out);
  }
  if (out.data) fputs(out.data, stdout);
  sb_free(&out);
  return failures ? 1 : 0;
}
