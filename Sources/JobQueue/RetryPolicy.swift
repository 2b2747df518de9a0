// RetryPolicy: when a failed attempt may run again. Exponential in the attempt number, capped, with
// jitter so that jobs failing together (a model server hiccup) do not come back together.

/// Exponential backoff with jitter.
public struct RetryPolicy: Sendable, Equatable {
    /// Delay after the first failed attempt, in seconds.
    public var baseSeconds: Double
    /// Upper bound of the delay.
    public var maximumSeconds: Double
    /// Fraction of the delay that is randomized: 0.25 → between 75 % and 100 % of the nominal delay.
    public var jitter: Double

    public init(baseSeconds: Double = 10, maximumSeconds: Double = 3600, jitter: Double = 0.25) {
        self.baseSeconds = baseSeconds
        self.maximumSeconds = maximumSeconds
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The nominal delay after failed attempt `attempt` (1-based): base · 2^(attempt−1), capped.
    public func nominalDelay(afterAttempt attempt: Int) -> Double {
        let exponent = Double(min(max(attempt - 1, 0), 40))
        return min(baseSeconds * Double.pow2(exponent), maximumSeconds)
    }

    /// The delay to use: the nominal delay less a random share of up to `jitter`.
    public func delay(afterAttempt attempt: Int, random: Double = Double.random(in: 0...1)) -> Double {
        let nominal = nominalDelay(afterAttempt: attempt)
        return nominal * (1 - jitter * random)
    }
}

extension Double {
    fileprivate static func pow2(_ exponent: Double) -> Double {
        var value = 1.0
        var left = Int(exponent)
        while left > 0 {
            value *= 2
            left -= 1
        }
        return value
    }
}
