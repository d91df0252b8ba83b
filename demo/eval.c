#include <math.h>
#include "calc.h"

double eval(const Node *n, const char **error) {
  double value;
  switch (n->op) {
    case 0: return n->num;
    case 'v':
      if (table_get(n->name, &value)) return value;
      *error = "unknown variable";
      return 0;
    case '=':
      if (n->lhs->op != 'v') { *error = "can only assign to a name"; return 0; }
      value = eval(n->rhs, error);
      table_set(n->lhs->name, value);
      return value;
  }
  double a = eval(n->lhs, error), b = eval(n->rhs, error);
  switch (n->op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/': if (b == 0) *error = "division by zero"; return b == 0 ? 0 : a / b;
    case '%': return fmod(a, b);
    case '^': return pow(a, b);
  }
  *error = "unknown operator";
  return 0;
}
