namespace Hourglass;

/// <summary>
/// An error a user can cause or fix (bad input, bad configuration, an unreachable or unsuitable server).
/// Its message names what was wrong and, where there is one, what to do; the command line prints it alone,
/// without a stack trace.
/// </summary>
internal class HourglassException : Exception
{
    public HourglassException(string message) : base(message) { }

    public HourglassException(string message, Exception innerException) : base(message, innerException) { }
}
