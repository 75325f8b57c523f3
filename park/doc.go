// Package park keeps the parked calls of the switch: one orbit table per call
// park policy, the allocation of pickup codes, and the life of an orbit from
// park through ringback to retrieve, answer, abandon or hang-up, with the
// semantics of Microsoft Teams call park policies.
//
// The package imports only the policy package of the project. It reaches SIP
// through the Ringer and Call interfaces it defines, and reads time through a
// Clock so that tests can drive timeouts without waiting.
package park
