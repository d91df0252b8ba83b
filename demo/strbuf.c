#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "calc.h"

void sb_init(StrBuf *sb) { sb->data = NULL; sb->len = sb->cap = 0; }

void sb_addf(StrBuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (need < 0) return;
  if (sb->len + (size_t)need + 1 > sb->cap) {
    sb->cap = (sb->len + (size_t)need + 1) * 2;
    sb->data = realloc(sb->data, sb->cap);
  }
  va_start(ap, fmt);
  vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
  va_end(ap);
  sb->len += (size_t)need;
}

void sb_free(StrBuf *sb) { free(sb->data); sb_init(sb); }
