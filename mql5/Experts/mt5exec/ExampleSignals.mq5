//+------------------------------------------------------------------+
//|                                               ExampleSignals.mq5 |
//|  The smallest Expert Advisor mt5exec can deploy and confirm: it  |
//|  trades nothing and only reports READY and heartbeats.           |
//+------------------------------------------------------------------+
#property copyright   "mt5exec"
#property version     "1.00"
#property description "Reports READY and heartbeats to mt5exec (Include\\mt5exec\\Signals.mqh)."

#include <mt5exec\Signals.mqh>

input int InpHeartbeatSeconds = 5; // Heartbeat interval, seconds

//+------------------------------------------------------------------+
int OnInit()
  {
   //--- the EA's own initialisation goes here, first: READY means all of it succeeded
   if(!Mt5execSignalsInit(InpHeartbeatSeconds))
      return(INIT_FAILED);
   if(!Mt5execSignalReady())
     {
      Mt5execSignalsDeinit();
      return(INIT_FAILED);
     }
   //--- first beat now rather than InpHeartbeatSeconds from now
   Mt5execHeartbeat();
   return(INIT_SUCCEEDED);
  }

//+------------------------------------------------------------------+
void OnDeinit(const int reason)
  {
   Mt5execSignalsDeinit();
  }

//+------------------------------------------------------------------+
void OnTimer()
  {
   Mt5execHeartbeat();
  }

//+------------------------------------------------------------------+
void OnTick()
  {
  }
//+------------------------------------------------------------------+
