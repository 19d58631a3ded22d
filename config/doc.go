// Package config owns qaqueue's environment surface: every variable the
// service reads, its default, how it is parsed and how it is validated.
//
// It is, with cmd, the only code that looks at the environment, and even it
// does so through a [Lookup] passed in, so tests never touch the process
// environment. [Load] layers the real environment over an optional .env file
// (see [LoadDotEnv]) over the defaults documented on each field, and returns
// every problem at once, each message naming its variable. The defaults are
// written once, as the Default… constants (defaults.go), which the
// components' Configs read too for their zero fields.
//
// Values that are secret ([Secret], [SecretURL], [APIKeys]) print masked
// through fmt, encoding/json and [Config.Settings]: a Config can be logged
// or shown by `qa config` without leaking a key.
//
// Conventions shared by every variable:
//   - an empty value is the same as an unset one, so compose files that
//     interpolate unset variables as "" keep the defaults;
//   - durations use Go syntax with a unit (30s, 2m, 24h); those that asynq
//     stores must be whole seconds;
//   - byte sizes accept plain bytes or a unit (500MB, 1GiB, 64Ki);
//   - booleans accept true/false, 1/0, yes/no and on/off.
package config
