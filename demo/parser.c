#include <stdlib.h>
#include <string.h>
#include "calc.h"

static Node *node(char op, Node *lhs, Node *rhs) {
  Node *n = calloc(1, sizeof *n);
  n->op = op;
  n->lhs = lhs;
  n->rhs = rhs;
  return n;
}

static int precedence(char op) {
  switch (op) {
    case '=': return 1;
    case '+': case '-': return 2;
    case '*': case '/': case '%': return 3;
    case '^': return 4;
    default: return 0;
  }
}

static Node *parse_primary(Lexer *lx, const char **error) {
  Token t = lx->cur;
  if (t.kind == TOK_NUM) { lexer_next(lx); Node *n = node(0, NULL, NULL); n->num = t.num; return n; }
  if (t.kind == TOK_NAME) { lexer_next(lx); Node *n = node('v', NULL, NULL); strcpy(n->name, t.text); return n; }
  if (t.kind == TOK_OP && t.text[0] == '-') { lexer_next(lx); return node('-', node(0, NULL, NULL), parse_primary(lx, error)); }
  if (t.kind == TOK_LPAREN) {
    lexer_next(lx);
    Node *inner = parse_expr(lx, error);
    if (lx->cur.kind != TOK_RPAREN) { *error = "expected ')'"; return inner; }
    lexer_next(lx);
    return inner;
  }
  *error = "expected a number, a name or '('";
  return node(0, NULL, NULL);
}

static Node *parse_binary(Lexer *lx, int min_prec, const char **error) {
  Node *lhs = parse_primary(lx, error);
  while (!*error && lx->cur.kind == TOK_OP && precedence(lx->cur.text[0]) >= min_prec) {
    char op = lx->cur.text[0];
    int prec = precedence(op);
    lexer_next(lx);
    /* '^' and '=' associate to the right. */
    Node *rhs = parse_binary(lx, op == '^' || op == '=' ? prec : prec + 1, error);
    lhs = node(op, lhs, rhs);
  }
  return lhs;
}

Node *parse_expr(Lexer *lx, const char **error) { return parse_binary(lx, 1, error); }

void node_free(Node *n) {
  if (!n) return;
  node_free(n->lhs);
  node_free(n->rhs);
  free(n);
}
