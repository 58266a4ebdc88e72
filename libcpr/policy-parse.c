/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cpr-policy(5) text format: a line-by-line lexer and parser that fills
 * a struct cpr_policy (rules, default action, architectures) and refuses
 * anything malformed or contradictory with "FILE:LINE:COLUMN: message".
 * Pure: no system calls.  libseccomp is only asked to resolve names.
 */
#include <errno.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "policy-internal.h"

#define TOKENS_MAX 40 /* more than the longest valid statement */
#define TOKEN_SHOW 40 /* bytes of a token quoted in a message */

struct token {
	const char *s;
	size_t len;
	unsigned col;
};

struct parser {
	struct cpr_policy *p;
	struct cpr_error *err;
	char file[200]; /* quoted, for messages */
	unsigned line;
	struct token tok[TOKENS_MAX];
	size_t n_tok;
	size_t pos;	  /* next token */
	unsigned eol_col; /* column just after the statement */
};

static int _cpr_printf_(5, 6)
	fail_at(struct parser *ps, int code, unsigned line, unsigned col, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		cpr_error_set(ps->err, code, UINT32_MAX, line, col, "%s:%u:%u: %s", ps->file, line,
			      col, msg);
	else
		cpr_error_set(ps->err, code, UINT32_MAX, 0, 0, "%s: %s", ps->file, msg);
	return code;
}

#define fail(ps, col, ...) fail_at((ps), -EINVAL, (ps)->line, (col), __VA_ARGS__)

static bool tok_is(const struct token *t, const char *word)
{
	return t->len == strlen(word) && memcmp(t->s, word, t->len) == 0;
}

/* @t as a quoted, truncated string for messages. */
static const char *tok_show(const struct token *t, char *buf, size_t len)
{
	return cpr_quote(buf, len, t->s, t->len);
}

/* @t copied into @buf as a C string; tokens are shorter than a line. */
static const char *tok_str(const struct token *t, char *buf, size_t len)
{
	size_t n = t->len < len - 1 ? t->len : len - 1;

	memcpy(buf, t->s, n);
	buf[n] = 0;
	return buf;
}

static bool is_word_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '|';
}

/* Length of the operator at @s (1 or 2), or 0 when @s holds none. */
static size_t op_len(const char *s, const char *end)
{
	bool eq_next = end - s > 1 && s[1] == '=';

	switch (s[0]) {
	case '&':
		return 1;
	case '<':
	case '>':
		return eq_next ? 2 : 1;
	case '=':
	case '!':
		return eq_next ? 2 : 0;
	default:
		return 0;
	}
}

static int lex_push(struct parser *ps, const char *s, size_t len, unsigned col)
{
	if (ps->n_tok == TOKENS_MAX)
		return fail(ps, col, "too many words on one line (at most %u)", TOKENS_MAX);
	ps->tok[ps->n_tok++] = (struct token){ .s = s, .len = len, .col = col };
	return 0;
}

/* Split one line (without its newline) into tokens; stops at '#'. */
static int lex_line(struct parser *ps, const char *line, size_t len)
{
	const char *s = line, *end = line + len;
	int r;

	ps->n_tok = ps->pos = 0;
	while (s < end && *s != '#') {
		unsigned col = (unsigned)(s - line) + 1;
		unsigned char c = (unsigned char)*s;
		size_t n = 0;

		if (c == ' ' || c == '\t' || c == '\r') {
			s++;
			continue;
		}
		if (is_word_char(c))
			while (s + n < end && is_word_char((unsigned char)s[n]))
				n++;
		else
			n = op_len(s, end);
		if (n == 0) {
			if (c == '=' || c == '!')
				return fail(ps, col, "'%c' is not an operator; did you mean '%c='?",
					    c, c);
			if (c >= 0x20 && c < 0x7f)
				return fail(ps, col, "unexpected character '%c'", c);
			return fail(ps, col, "unexpected byte 0x%02x outside a comment", c);
		}
		r = lex_push(ps, s, n, col);
		if (r < 0)
			return r;
		s += n;
	}
	ps->eol_col = (unsigned)(s - line) + 1;
	return 0;
}

static const struct token *next(struct parser *ps)
{
	return ps->pos < ps->n_tok ? &ps->tok[ps->pos++] : NULL;
}

/* One term of a value: a number or a constant name. */
static int parse_term(struct parser *ps, const char *s, unsigned col, uint64_t *ret)
{
	char shown[TOKEN_SHOW];
	char *e = NULL;

	if (*s == 0)
		return fail(ps, col, "empty term in a value ('|' needs a term on each side)");
	if ((*s >= 'A' && *s <= 'Z') || *s == '_') {
		if (policy_constant_lookup(s, ret))
			return 0;
		return fail(ps, col, "unknown constant '%s' (see cpr-policy(5) for the names)",
			    cpr_quote(shown, sizeof(shown), s, strlen(s)));
	}
	if (*s != '-' && (*s < '0' || *s > '9'))
		return fail(ps, col, "'%s' is not a number or a constant",
			    cpr_quote(shown, sizeof(shown), s, strlen(s)));
	errno = 0;
	if (*s == '-') {
		long long v = s[1] >= '0' && s[1] <= '9' ? strtoll(s, &e, 10) : 0;

		if (errno == ERANGE)
			return fail(ps, col, "'%s' does not fit in 64 bits",
				    cpr_quote(shown, sizeof(shown), s, strlen(s)));
		*ret = (uint64_t)v;
	} else {
		*ret = strtoull(s, &e, 0);
		if (errno == ERANGE)
			return fail(ps, col, "'%s' does not fit in 64 bits",
				    cpr_quote(shown, sizeof(shown), s, strlen(s)));
	}
	if (!e || e == s || *e)
		return fail(ps, col, "'%s' is not a valid number",
			    cpr_quote(shown, sizeof(shown), s, strlen(s)));
	return 0;
}

/* A value: terms joined by '|' (bitwise OR). */
static int parse_value(struct parser *ps, const struct token *t, uint64_t *ret)
{
	char buf[CPR_POLICY_LINE_MAX + 1];
	uint64_t v = 0;
	char *s, *bar;
	int r;

	if (!t)
		return fail(ps, ps->eol_col, "missing value at the end of the line");
	tok_str(t, buf, sizeof(buf));
	for (s = buf;; s = bar + 1) {
		uint64_t term;

		bar = strchr(s, '|');
		if (bar)
			*bar = 0;
		r = parse_term(ps, s, t->col + (unsigned)(s - buf), &term);
		if (r < 0)
			return r;
		v |= term;
		if (!bar)
			break;
	}
	*ret = v;
	return 0;
}

static int parse_errno_action(struct parser *ps, const struct token *t, uint32_t *ret)
{
	char buf[CPR_POLICY_LINE_MAX + 1];
	uint64_t e;
	int r;

	if (!t)
		return fail(ps, ps->eol_col, "'errno' needs a value, such as EPERM or 1");
	tok_str(t, buf, sizeof(buf));
	if (buf[0] == 'E' && policy_errno_lookup(buf, &e)) {
		*ret = SCMP_ACT_ERRNO((uint32_t)e);
		return 0;
	}
	if (buf[0] < '0' || buf[0] > '9')
		return fail(ps, t->col, "unknown errno name '%s'", tok_show(t, buf, TOKEN_SHOW));
	r = parse_value(ps, t, &e);
	if (r < 0)
		return r;
	if (e < 1 || e > 4094)
		return fail(ps, t->col, "errno value %llu is out of range 1..4094",
			    (unsigned long long)e);
	*ret = SCMP_ACT_ERRNO((uint32_t)e);
	return 0;
}

/* An action word (and the errno value after "errno"); NULL @ret: not one. */
static int parse_action(struct parser *ps, const struct token *t, uint32_t *ret)
{
	static const struct {
		const char *word;
		uint32_t action;
	} actions[] = {
		{ "allow", SCMP_ACT_ALLOW },
		{ "log", SCMP_ACT_LOG },
		{ "trap", SCMP_ACT_TRAP },
		{ "kill", SCMP_ACT_KILL_PROCESS },
		{ "kill-process", SCMP_ACT_KILL_PROCESS },
		{ "kill-thread", SCMP_ACT_KILL_THREAD },
	};

	if (tok_is(t, "errno"))
		return parse_errno_action(ps, next(ps), ret);
	for (size_t i = 0; i < ARRAY_SIZE(actions); i++)
		if (tok_is(t, actions[i].word)) {
			*ret = actions[i].action;
			return 0;
		}
	return -ENOENT;
}

static int parse_cond_arg(struct parser *ps, const struct token *t, unsigned *ret)
{
	char buf[TOKEN_SHOW];

	if (t->len == 4 && memcmp(t->s, "arg", 3) == 0 && t->s[3] >= '0' && t->s[3] <= '5') {
		*ret = (unsigned)(t->s[3] - '0');
		return 0;
	}
	if (t->len >= 3 && memcmp(t->s, "arg", 3) == 0)
		return fail(ps, t->col, "'%s': system calls have arguments arg0 to arg5",
			    tok_show(t, buf, sizeof(buf)));
	return fail(ps, t->col, "expected a condition such as 'arg0 == 1', not '%s'",
		    tok_show(t, buf, sizeof(buf)));
}

static int parse_op(struct parser *ps, const struct token *t, enum policy_op *ret)
{
	static const struct {
		const char *text;
		enum policy_op op;
	} ops[] = {
		{ "==", POLICY_OP_EQ }, { "!=", POLICY_OP_NE }, { "<", POLICY_OP_LT },
		{ "<=", POLICY_OP_LE }, { ">", POLICY_OP_GT },	{ ">=", POLICY_OP_GE },
	};
	char buf[TOKEN_SHOW];

	if (!t)
		return fail(ps, ps->eol_col, "missing comparison operator at the end of the line");
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (tok_is(t, ops[i].text)) {
			*ret = ops[i].op;
			return 0;
		}
	return fail(ps, t->col, "expected one of == != < <= > >= &, not '%s'",
		    tok_show(t, buf, sizeof(buf)));
}

/* Refuse comparisons that can never hold: they would hide a typo. */
static int check_cond(struct parser *ps, const struct policy_cond *c)
{
	if (c->op == POLICY_OP_MASKED_EQ && (c->value & ~c->mask))
		return fail(ps, c->col,
			    "value 0x%llx has bits outside mask 0x%llx: the condition never holds",
			    (unsigned long long)c->value, (unsigned long long)c->mask);
	if (c->op == POLICY_OP_MASKED_EQ && c->mask == 0)
		return fail(ps, c->col, "mask 0 selects no bits: the condition always holds");
	if (c->op == POLICY_OP_LT && c->value == 0)
		return fail(ps, c->col, "'< 0' never holds: arguments are unsigned");
	if (c->op == POLICY_OP_GT && c->value == UINT64_MAX)
		return fail(ps, c->col, "'> 0xffffffffffffffff' never holds");
	return 0;
}

static int parse_cond(struct parser *ps, const struct token *t, struct policy_cond *c)
{
	const struct token *o;
	int r;

	*c = (struct policy_cond){ .col = t->col };
	r = parse_cond_arg(ps, t, &c->arg);
	if (r < 0)
		return r;
	o = next(ps);
	if (o && tok_is(o, "&")) {
		r = parse_value(ps, next(ps), &c->mask);
		if (r < 0)
			return r;
		o = next(ps);
		r = parse_op(ps, o, &c->op);
		if (r < 0)
			return r;
		if (c->op != POLICY_OP_EQ)
			return fail(ps, o->col, "only '==' may follow a mask");
		c->op = POLICY_OP_MASKED_EQ;
	} else {
		r = parse_op(ps, o, &c->op);
		if (r < 0)
			return r;
	}
	r = parse_value(ps, next(ps), &c->value);
	if (r < 0)
		return r;
	return check_cond(ps, c);
}

/* Conditions of @rule until the end of the line, kept sorted by argument. */
static int parse_conds(struct parser *ps, struct policy_rule *rule)
{
	const struct token *t;

	while ((t = next(ps))) {
		struct policy_cond c;
		unsigned i;
		int r = parse_cond(ps, t, &c);

		if (r < 0)
			return r;
		for (i = 0; i < rule->n_conds; i++)
			if (rule->conds[i].arg == c.arg)
				return fail(
					ps, c.col,
					"arg%u is already compared at column %u (one comparison "
					"per argument in a rule: write two rules)",
					c.arg, rule->conds[i].col);
		for (i = rule->n_conds; i > 0 && rule->conds[i - 1].arg > c.arg; i--)
			rule->conds[i] = rule->conds[i - 1];
		rule->conds[i] = c;
		rule->n_conds++;
	}
	return 0;
}

static bool conds_equal(const struct policy_rule *a, const struct policy_rule *b)
{
	if (a->n_conds != b->n_conds)
		return false;
	for (unsigned i = 0; i < a->n_conds; i++) {
		const struct policy_cond *x = &a->conds[i], *y = &b->conds[i];

		if (x->arg != y->arg || x->op != y->op || x->value != y->value ||
		    (x->op == POLICY_OP_MASKED_EQ && x->mask != y->mask))
			return false;
	}
	return true;
}

/*
 * A condition other than == (or a masked ==) that two rules of one system
 * call share to the letter: libseccomp 2.5 does not finish merging such
 * rules (its compile never returns), so it is refused here, with what to do.
 */
static const struct policy_cond *shared_ordering(const struct policy_rule *a,
						 const struct policy_rule *b)
{
	for (unsigned i = 0; i < a->n_conds; i++)
		for (unsigned j = 0; j < b->n_conds; j++) {
			const struct policy_cond *x = &a->conds[i], *y = &b->conds[j];

			if (x->op != POLICY_OP_EQ && x->op != POLICY_OP_MASKED_EQ &&
			    x->arg == y->arg && x->op == y->op && x->value == y->value)
				return x;
		}
	return NULL;
}

/*
 * libseccomp would silently drop one of two contradicting rules, and lays
 * out overlapping ones in an order the file does not decide: refuse both.
 */
static int check_conflicts(struct parser *ps, const struct policy_rule *rule)
{
	const struct cpr_policy *p = ps->p;
	const struct policy_cond *shared;

	for (size_t i = 0; i < p->n_rules; i++) {
		const struct policy_rule *o = &p->rules[i];

		if (o->nr != rule->nr)
			continue;
		if (o->n_conds == 0 || rule->n_conds == 0)
			return fail(ps, rule->syscall_col,
				    "'%s' already has a rule at line %u; a rule without "
				    "conditions must be the only one for its system call",
				    rule->name, o->line);
		if (conds_equal(o, rule))
			return fail(ps, rule->syscall_col,
				    "'%s' has a rule with the same conditions at line %u",
				    rule->name, o->line);
		if ((shared = shared_ordering(rule, o)))
			return fail(ps, shared->col,
				    "this condition of '%s' is also in its rule at line %u: "
				    "libseccomp cannot merge two rules that share a condition "
				    "other than ==; join them into one rule, or write the shared "
				    "test as == where it can be",
				    rule->name, o->line);
		if (o->action != rule->action && policy_rules_overlap(o, rule))
			return fail(ps, rule->syscall_col,
				    "a call to '%s' can match both this rule and the one at line "
				    "%u, which has another action: make their conditions disjoint",
				    rule->name, o->line);
	}
	return 0;
}

static int rule_append(struct parser *ps, const struct policy_rule *rule)
{
	struct cpr_policy *p = ps->p;

	if (p->n_rules == CPR_POLICY_RULES_MAX)
		return fail_at(ps, -E2BIG, ps->line, rule->action_col,
			       "too many rules (at most %u)", CPR_POLICY_RULES_MAX);
	if (p->n_rules == p->n_alloc) {
		size_t n = p->n_alloc ? p->n_alloc * 2 : 64;
		struct policy_rule *rules = reallocarray(p->rules, n, sizeof(*rules));

		if (!rules)
			return fail_at(ps, -ENOMEM, ps->line, rule->action_col, "out of memory");
		p->rules = rules;
		p->n_alloc = n;
	}
	p->rules[p->n_rules++] = *rule;
	return 0;
}

static int parse_syscall(struct parser *ps, const struct token *t, struct policy_rule *rule)
{
	char buf[TOKEN_SHOW];
	char name[POLICY_NAME_MAX];
	int nr;

	if (!t)
		return fail(ps, ps->eol_col, "missing system call name after the action");
	if (t->len >= sizeof(name))
		return fail(ps, t->col, "unknown system call '%s'", tok_show(t, buf, sizeof(buf)));
	tok_str(t, name, sizeof(name));
	nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return fail(ps, t->col, "unknown system call '%s'", tok_show(t, buf, sizeof(buf)));
	rule->nr = nr;
	rule->syscall_col = t->col;
	memcpy(rule->name, name, sizeof(name));
	return 0;
}

static int parse_rule(struct parser *ps, const struct token *first, uint32_t action)
{
	struct policy_rule rule = {
		.action = action,
		.line = ps->line,
		.action_col = first->col,
	};
	int r;

	r = parse_syscall(ps, next(ps), &rule);
	if (r < 0)
		return r;
	r = parse_conds(ps, &rule);
	if (r < 0)
		return r;
	r = check_conflicts(ps, &rule);
	if (r < 0)
		return r;
	return rule_append(ps, &rule);
}

static int parse_default(struct parser *ps, const struct token *first)
{
	const struct token *t = next(ps);
	char buf[TOKEN_SHOW];
	uint32_t action;
	int r;

	if (ps->p->default_line)
		return fail(ps, first->col, "second 'default' line (the first is line %u)",
			    ps->p->default_line);
	if (!t)
		return fail(ps, ps->eol_col, "'default' needs an action, such as 'kill'");
	r = parse_action(ps, t, &action);
	if (r == -ENOENT)
		return fail(ps, t->col, "unknown action '%s'", tok_show(t, buf, sizeof(buf)));
	if (r < 0)
		return r;
	t = next(ps);
	if (t)
		return fail(ps, t->col, "unexpected '%s' after the default action",
			    tok_show(t, buf, sizeof(buf)));
	ps->p->default_action = action;
	ps->p->default_line = ps->line;
	return 0;
}

static int parse_arch(struct parser *ps, const struct token *first)
{
	struct cpr_policy *p = ps->p;
	const struct token *t;
	char buf[TOKEN_SHOW];

	if (ps->pos == ps->n_tok)
		return fail(ps, ps->eol_col, "'arch' needs at least one architecture name");
	while ((t = next(ps))) {
		uint32_t arch = 0;

		tok_str(t, buf, sizeof(buf));
		if (t->len < sizeof(buf))
			arch = strcmp(buf, "native") == 0 ? seccomp_arch_native()
							  : seccomp_arch_resolve_name(buf);
		if (arch == 0)
			return fail(ps, t->col, "unknown architecture '%s'",
				    tok_show(t, buf, sizeof(buf)));
		if (arch == seccomp_arch_native())
			continue;
		for (size_t i = 0; i < p->n_arches; i++)
			if (p->arches[i] == arch)
				return fail(ps, t->col, "architecture '%s' is named twice",
					    tok_show(t, buf, sizeof(buf)));
		if (p->n_arches == CPR_POLICY_ARCHES_MAX)
			return fail_at(ps, -E2BIG, ps->line, t->col,
				       "too many architectures (at most %u)",
				       CPR_POLICY_ARCHES_MAX);
		p->arch_line[p->n_arches] = ps->line;
		p->arch_col[p->n_arches] = t->col;
		p->arches[p->n_arches++] = arch;
	}
	return 0;
}

static int parse_statement(struct parser *ps)
{
	const struct token *first = next(ps);
	char buf[TOKEN_SHOW], name[POLICY_NAME_MAX];
	uint32_t action;
	int r;

	if (!first)
		return 0;
	if (tok_is(first, "default"))
		return parse_default(ps, first);
	if (tok_is(first, "arch"))
		return parse_arch(ps, first);
	r = parse_action(ps, first, &action);
	if (r >= 0)
		return parse_rule(ps, first, action);
	if (r != -ENOENT)
		return r;
	if (first->len < sizeof(name) &&
	    seccomp_syscall_resolve_name(tok_str(first, name, sizeof(name))) != __NR_SCMP_ERROR)
		return fail(ps, first->col,
			    "a rule starts with its action: 'allow %s', 'errno EPERM %s', ...",
			    name, name);
	return fail(ps, first->col,
		    "unknown statement '%s' (expected default, arch, allow, errno, kill, "
		    "kill-process, kill-thread, trap or log)",
		    tok_show(first, buf, sizeof(buf)));
}

/* A rule with the default action could never change anything: refuse. */
static int check_default(struct parser *ps)
{
	const struct cpr_policy *p = ps->p;
	char buf[32];

	if (!p->default_line)
		return fail_at(ps, -EINVAL, 0, 0,
			       "no 'default' line (add one, e.g. 'default kill')");
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct policy_rule *rule = &p->rules[i];

		if (rule->action == p->default_action)
			return fail_at(
				ps, -EINVAL, rule->line, rule->action_col,
				"the rule for '%s' repeats the default action '%s' of line %u",
				rule->name, policy_action_format(rule->action, buf, sizeof(buf)),
				p->default_line);
	}
	return 0;
}

static int parse_line(struct parser *ps, const char *s, size_t len)
{
	const char *nul = memchr(s, 0, len);
	int r;

	if (nul)
		return fail(ps, (unsigned)(nul - s) + 1, "NUL byte in policy text");
	if (len > CPR_POLICY_LINE_MAX)
		return fail_at(ps, -E2BIG, ps->line, CPR_POLICY_LINE_MAX + 1,
			       "line longer than %u bytes", CPR_POLICY_LINE_MAX);
	r = lex_line(ps, s, len);
	if (r < 0)
		return r;
	return parse_statement(ps);
}

int policy_parse_text(struct cpr_policy *p, const char *text, size_t len, const char *filename,
		      struct cpr_error *err)
{
	struct parser ps = { .p = p, .err = err };
	const char *s = text, *end = text + len;

	if (!filename)
		filename = "<policy>";
	cpr_quote(ps.file, sizeof(ps.file), filename, strlen(filename));
	if (len > CPR_POLICY_TEXT_MAX)
		return fail_at(&ps, -E2BIG, 0, 0,
			       "policy text of %zu bytes exceeds the limit of %u", len,
			       CPR_POLICY_TEXT_MAX);
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
		int r;

		ps.line++;
		r = parse_line(&ps, s, n);
		if (r < 0)
			return r;
		s += n + (nl ? 1 : 0);
	}
	return check_default(&ps);
}
