namespace Hourglass.Imports;

/// <summary>What an import does with bad lines: refuse the whole batch (the default) or record the valid rest.</summary>
internal enum ImportErrorMode
{
    Refuse,
    Skip,
}
