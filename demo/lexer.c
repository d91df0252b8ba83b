#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "calc.h"

void lexer_init(Lexer *lx, const char *src) {
  lx->src = src;
  lx->pos = 0;
  lexer_next(lx);
}

void lexer_next(Lexer *lx) {
  const char *s = lx->src;
  while (isspace((unsigned char)s[lx->pos])) lx->pos++;
  char c = s[lx->pos];
  Token *t = &lx->cur;
  memset(t, 0, sizeof *t);
  if (c == '\0') { t->kind = TOK_END; return; }
  if (isdigit((unsigned char)c) || c == '.') {
    char *end;
    t->kind = TOK_NUM;
    t->num = strtod(s + lx->pos, &end);
    lx->pos = (size_t)(end - s);
    return;
  }
  if (isalpha((unsigned char)c)) {
    size_t n = 0;
    while (isalnum((unsigned char)s[lx->pos]) && n < sizeof t->text - 1) t->text[n++] = s[lx->pos++];
    t->kind = TOK_NAME;
    return;
  }
  lx->pos++;
  t->text[0] = c;
  t->kind = c == '(' ? TOK_LPAREN : c == ')' ? TOK_RPAREN : TOK_OP;
}
