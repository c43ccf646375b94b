/* Unit tests of validate: the phone numbers and names that the configuration and the protocol
 * share. */
#include "test.h"
#include "validate.h"

static void test_phone_number(void)
{
	check(validate_phone_number("+32470123456"));
	check(validate_phone_number("+123456"));
	check(validate_phone_number("+123456789012345"));
	check(!validate_phone_number("+12345"));
	check(!validate_phone_number("+1234567890123456"));
	check(!validate_phone_number("32470123456"));
	check(!validate_phone_number("+3247012345a"));
	check(!validate_phone_number("+32 470123456"));
	check(!validate_phone_number(""));
	check(!validate_phone_number(NULL));
}

static void test_name(void)
{
	check(validate_name("gsm0"));
	check(validate_name("on-call_1.a"));
	check(validate_name("abcdefghijklmnopqrstuvwxyz012345")); /* 32 */
	check(!validate_name("abcdefghijklmnopqrstuvwxyz0123456"));
	check(!validate_name(""));
	check(!validate_name("a b"));
	check(!validate_name("a/b"));
	check(!validate_name("caf\xc3\xa9")); /* ASCII only, whatever the locale */
	check(!validate_name(NULL));
}

int main(void)
{
	run(test_phone_number);
	run(test_name);
	return test_exit();
}
