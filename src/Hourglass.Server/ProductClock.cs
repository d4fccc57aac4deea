namespace Hourglass.Server;

/// <summary>
/// The executable's one wall clock. Everything that needs the time takes a <see cref="TimeProvider"/>; the commands and
/// the server hand them this one, so a test or the simulator can hand another. Reading the wall clock anywhere else
/// (<c>DateTime.UtcNow</c>, <c>DateTimeOffset.Now</c>, <c>TimeProvider.System</c> …) fails the build (RS0030, the
/// banned list in <c>BannedSymbols.txt</c>; docs/development.md).
/// </summary>
internal static class ProductClock
{
#pragma warning disable RS0030 // the one place the wall clock is read
    public static TimeProvider Time { get; } = TimeProvider.System;
#pragma warning restore RS0030
}
