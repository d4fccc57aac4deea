namespace Hourglass.Insights;

/// <summary>What a caller does with bad lines: refuse the whole batch (the default) or record the valid rest.</summary>
public enum EventErrorMode
{
    Refuse,
    Skip,
}
