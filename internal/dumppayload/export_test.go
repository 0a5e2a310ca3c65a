package dumppayload

// ParseInt is parseInt, for the tests of package dumppayload_test.
var ParseInt = parseInt
