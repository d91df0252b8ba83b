#ifndef CALC_H
#define CALC_H
#include <stddef.h>

typedef enum { TOK_NUM, TOK_NAME, TOK_OP, TOK_LPAREN, TOK_RPAREN, TOK_END } TokKind;
typedef struct { TokKind kind; double num; char text[32]; } Token;
typedef struct { const char *src; size_t pos; Token cur; } Lexer;

typedef struct Node {
  char op;                 /* 0 for a number, 'v' for a variable, else an operator */
  double num;
  char name[32];
  struct Node *lhs, *rhs;
} Node;

typedef struct { char *data; size_t len, cap; } StrBuf;

void lexer_init(Lexer *lx, const char *src);
void lexer_next(Lexer *lx);
Node *parse_expr(Lexer *lx, const char **error);
void node_free(Node *n);
double eval(const Node *n, const char **error);
int table_set(const char *name, double value);
int table_get(const char *name, double *value);
void sb_init(StrBuf *sb);
void sb_addf(StrBuf *sb, const char *fmt, ...);
void sb_free(StrBuf *sb);
#endif
