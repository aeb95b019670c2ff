"""UI text in Japanese and English. The language follows the browser, with a switch."""

from __future__ import annotations

__all__ = ["LANGUAGES", "pick_language", "translator", "wait_text"]

LANGUAGES = ("ja", "en")

_TEXT: dict[str, dict[str, str]] = {
    "overview": {"ja": "概要", "en": "Overview"},
    "people": {"ja": "顧客", "en": "People"},
    "live": {"ja": "ライブ", "en": "Live"},
    "logout": {"ja": "ログアウト", "en": "Log out"},
    "login": {"ja": "ログイン", "en": "Log in"},
    "workspace": {"ja": "ワークスペース", "en": "Workspace"},
    "email": {"ja": "メールアドレス", "en": "Email"},
    "password": {"ja": "パスワード", "en": "Password"},
    "login_failed": {
        "ja": "ワークスペース・メールアドレス・パスワードのいずれかが違います",
        "en": "Wrong workspace, email or password",
    },
    "search": {"ja": "検索", "en": "Search"},
    "search_hint": {"ja": "会員ID・メール・電話・名前・属性で検索", "en": "Member id, email, phone, name or any trait"},
    "people_count": {"ja": "顧客数", "en": "People"},
    "identified": {"ja": "会員（識別済み）", "en": "Identified"},
    "revenue_per_day": {"ja": "日別売上（チャネル別）", "en": "Revenue per day by channel"},
    "buyers_per_day": {"ja": "日別購入者数（チャネル別）", "en": "Buyers per day by channel"},
    "revenue": {"ja": "売上", "en": "Revenue"},
    "orders": {"ja": "購入件数", "en": "Orders"},
    "buyers": {"ja": "購入者数", "en": "Buyers"},
    "ch_web": {"ja": "Web", "en": "Web"},
    "ch_app": {"ja": "アプリ", "en": "App"},
    "ch_store": {"ja": "店舗", "en": "Store"},
    "all_channels": {"ja": "全チャネル", "en": "All channels"},
    "sales_by_channel": {"ja": "チャネル別の売上", "en": "Sales by channel"},
    "cross_channel": {"ja": "チャネル間の行き来", "en": "Across channels"},
    "share_store_online": {
        "ja": "店舗購入者のうち、同じ月にWeb・アプリを訪れた人",
        "en": "Store buyers who visited the web or app in the same month",
    },
    "share_online_store": {
        "ja": "オンライン購入者のうち、期間中に店舗でも購入した人",
        "en": "Online buyers who also bought in a store in the period",
    },
    "channel_mix": {"ja": "チャネルの使い方別の顧客", "en": "People by channel mix"},
    "channel_mix_note": {"ja": "現在・全期間の行動から", "en": "now, from all their history"},
    "mix_class": {"ja": "区分", "en": "Class"},
    "people_n": {"ja": "人数", "en": "People"},
    "avg_ltv": {"ja": "平均LTV", "en": "Average LTV"},
    "top_viewed_online": {"ja": "オンラインでよく見られた商品", "en": "Most viewed online"},
    "top_bought_store": {"ja": "店舗でよく買われた商品", "en": "Most bought in stores"},
    "product": {"ja": "商品", "en": "Product"},
    "views": {"ja": "閲覧数", "en": "Views"},
    "units": {"ja": "点数", "en": "Units"},
    "receipts": {"ja": "レシート数", "en": "Receipts"},
    "nothing_yet": {"ja": "この期間のデータはありません", "en": "Nothing in this period"},
    "no_channel_mix": {
        "ja": "計算属性 cross_channel_class と ltv が定義されていません",
        "en": "The computed traits cross_channel_class and ltv are not defined",
    },
    "identifiers": {"ja": "識別子", "en": "Identifiers"},
    "traits": {"ja": "属性", "en": "Traits"},
    "first_seen": {"ja": "初回", "en": "First seen"},
    "last_seen": {"ja": "最終", "en": "Last seen"},
    "channels": {"ja": "利用チャネル", "en": "Channels"},
    "timeline": {"ja": "タイムライン", "en": "Timeline"},
    "all": {"ja": "すべて", "en": "All"},
    "events": {"ja": "件", "en": "events"},
    "merged_here": {"ja": "ここで統合", "en": "Merged here"},
    "conflict": {"ja": "識別子の競合", "en": "Identifier conflict"},
    "visit_web": {"ja": "Web訪問", "en": "Web visit"},
    "visit_app": {"ja": "アプリ利用", "en": "App session"},
    "visit_store": {"ja": "来店", "en": "Store visit"},
    "visit_other": {"ja": "その他", "en": "Other"},
    "no_results": {"ja": "該当なし", "en": "Nothing found"},
    "next": {"ja": "次へ", "en": "Next"},
    "name": {"ja": "名前", "en": "Name"},
    "member_id": {"ja": "会員ID", "en": "Member id"},
    "recent_events": {"ja": "最新のイベント（自動更新）", "en": "Latest events (refreshing)"},
    "when": {"ja": "日時", "en": "When"},
    "channel": {"ja": "チャネル", "en": "Channel"},
    "event": {"ja": "イベント", "en": "Event"},
    "person": {"ja": "顧客", "en": "Person"},
    "details": {"ja": "内容", "en": "Details"},
    "store": {"ja": "店舗", "en": "Store"},
    "total": {"ja": "合計", "en": "Total"},
    "not_found": {"ja": "見つかりません", "en": "Not found"},
}


# the segment report page (admin/segment_report.py); N and X are filled in by the template
_TEXT |= {
    "segment_report": {"ja": "セグメントレポート", "en": "Segment report"},
    "period": {"ja": "期間", "en": "Period"},
    "last_n_days": {"ja": "直近N日", "en": "Last N days"},
    "size_now": {"ja": "現在の人数", "en": "Members now"},
    "size": {"ja": "人数", "en": "Members"},
    "entries": {"ja": "流入", "en": "Entries"},
    "exits": {"ja": "離脱", "en": "Exits"},
    "size_over_time": {"ja": "人数の推移", "en": "Size over time"},
    "end_of_day": {"ja": "各日の終わり時点", "en": "at the end of each day"},
    "entries_exits_per_day": {"ja": "日別の流入・離脱", "en": "Entries and exits per day"},
    "reconstructed": {"ja": "再構成", "en": "Reconstructed"},
    "reconstructed_hint": {
        "ja": "セグメント定義前の日：その日までのイベントから再構成した値です",
        "en": "A day before the segment was defined: rebuilt from the events up to that day",
    },
    "defined_day": {"ja": "定義日", "en": "Defined"},
    "history_note": {
        "ja": "{day} より前の日は、各日の終わりまでのイベントから再構成した値です（定義前の履歴）",
        "en": "Days before {day} are rebuilt from the events up to the end of each day (history before the definition)",
    },
    "history_running": {
        "ja": "定義前の履歴を再構成しています…",
        "en": "Reconstructing the history before the definition…",
    },
    "history_queued": {
        "ja": "定義前の履歴の再構成を待っています（まもなく始まります）",
        "en": "The history before the definition is queued for reconstruction",
    },
    "overlap": {"ja": "重なり", "en": "Overlap"},
    "compare_with": {"ja": "比較するセグメント", "en": "Compare with"},
    "compare": {"ja": "比較", "en": "Compare"},
    "no_other_segments": {"ja": "比較できる他のセグメントがありません", "en": "No other segment to compare with"},
    "only_in": {"ja": "X のみ", "en": "Only in X"},
    "in_both": {"ja": "両方", "en": "In both"},
    "jaccard": {"ja": "Jaccard係数", "en": "Jaccard index"},
    "by_day": {"ja": "日別", "en": "By day"},
    "day": {"ja": "日付", "en": "Day"},
    "members": {"ja": "メンバー", "en": "Members"},
    "download_csv": {"ja": "CSVダウンロード", "en": "Download CSV"},
    "entered_at": {"ja": "流入日時", "en": "Entered"},
    "first_page": {"ja": "最初へ", "en": "First page"},
    "no_members": {"ja": "メンバーはいません", "en": "No members"},
}


# the segments pages and the karte's panels (admin/segments.py, static/builder.js)
_TEXT |= {
    "segments": {"ja": "セグメント", "en": "Segments"},
    "computed_traits": {"ja": "計算属性", "en": "Computed traits"},
    "new_segment": {"ja": "新しいセグメント", "en": "New segment"},
    "edit": {"ja": "編集", "en": "Edit"},
    "report": {"ja": "レポート", "en": "Report"},
    "description": {"ja": "説明", "en": "Description"},
    "description_hint": {"ja": "このセグメントの目的", "en": "What the segment is for"},
    "definition": {"ja": "定義", "en": "Definition"},
    "members_now": {"ja": "現在の人数", "en": "Members now"},
    "status": {"ja": "状態", "en": "Status"},
    "ready": {"ja": "稼働中", "en": "Ready"},
    "building": {"ja": "集計中", "en": "Building"},
    "no_segments": {"ja": "セグメントはまだありません", "en": "No segments yet"},
    "saved": {"ja": "保存しました", "en": "Saved"},
    "apply_hint": {
        "ja": "ファイルからまとめて定義するには tsunagu apply FILE（docs/segments.md）",
        "en": "To define many at once from a file: tsunagu apply FILE (docs/segments.md)",
    },
    "segment_name": {"ja": "セグメント名（英数字）", "en": "Segment name"},
    "rule": {"ja": "条件", "en": "Rule"},
    "json_view": {"ja": "JSONで表示・編集", "en": "View and edit as JSON"},
    "save": {"ja": "保存", "en": "Save"},
    "delete": {"ja": "削除", "en": "Delete"},
    "confirm_delete": {"ja": "このセグメントを削除しますか？", "en": "Delete this segment?"},
    "live_count": {"ja": "該当人数（リアルタイム）", "en": "Live count"},
    "persons": {"ja": "人", "en": "people"},
    "sample_members": {"ja": "該当する人の例", "en": "Sample of members"},
    "user_data": {"ja": "ユーザーデータ", "en": "User data"},
    "last_7": {"ja": "7日", "en": "7d"},
    "last_28": {"ja": "28日", "en": "28d"},
    "count": {"ja": "回数", "en": "Count"},
    "field": {"ja": "項目", "en": "Field"},
    "all_fields": {"ja": "すべての項目", "en": "All fields"},
    "none": {"ja": "なし", "en": "None"},
    # the builder (static/builder.js)
    "match_all": {"ja": "すべてを満たす", "en": "All of"},
    "match_any": {"ja": "いずれかを満たす", "en": "Any of"},
    "add_condition": {"ja": "条件を追加", "en": "Add condition"},
    "add_group": {"ja": "グループを追加", "en": "Add group"},
    "exclude": {"ja": "除外（NOT）", "en": "Exclude (not)"},
    "remove": {"ja": "削除", "en": "Remove"},
    "cond_did": {"ja": "行動した", "en": "Did an event"},
    "cond_trait": {"ja": "属性", "en": "Trait"},
    "cond_data": {"ja": "ユーザーデータ", "en": "User data"},
    "cond_computed": {"ja": "計算属性", "en": "Computed trait"},
    "cond_segment": {"ja": "他のセグメント", "en": "Another segment"},
    "cond_other": {"ja": "その他（JSONで編集）", "en": "Other (edit as JSON)"},
    "any_channel": {"ja": "全チャネル", "en": "any channel"},
    "all_time": {"ja": "全期間", "en": "all time"},
    "within_days": {"ja": "直近N日", "en": "in the last N days"},
    "times": {"ja": "回", "en": "times"},
    "where": {"ja": "プロパティ条件 key=value", "en": "property key=value"},
    "value": {"ja": "値", "en": "value"},
    "in_segment": {"ja": "に含まれる", "en": "member of"},
    "saving": {"ja": "保存中…", "en": "Saving…"},
    "invalid_json": {"ja": "JSONとして読めません", "en": "Not valid JSON"},
}


# logins, sessions and the account page (admin/views.py, admin/account.py); {wait} and N
# are filled in by the view
_TEXT |= {
    "csrf_failed": {
        "ja": "フォームの有効期限が切れました。もう一度お試しください",
        "en": "The form expired: please try again",
    },
    "too_many_attempts": {
        "ja": "失敗が続いたため受け付けを止めています。{wait}後にもう一度お試しください",
        "en": "Too many failed attempts: please try again in {wait}",
    },
    "account": {"ja": "アカウント", "en": "Account"},
    "this_session": {"ja": "このセッション", "en": "This session"},
    "logged_in_at": {"ja": "ログイン日時", "en": "Logged in"},
    "session_expires": {"ja": "有効期限", "en": "Expires"},
    "other_sessions": {"ja": "他のセッション", "en": "Other sessions"},
    "end_other_sessions": {"ja": "他のセッションをすべて終了", "en": "End all other sessions"},
    "session_hint": {
        "ja": "セッションはログインから12時間で切れます。ログアウトするとサーバー側でも終了します。",
        "en": "A session ends 12 hours after the login; logging out ends it on the server too.",
    },
    "change_password": {"ja": "パスワード変更", "en": "Change password"},
    "current_password": {"ja": "現在のパスワード", "en": "Current password"},
    "new_password": {"ja": "新しいパスワード", "en": "New password"},
    "new_password_again": {"ja": "新しいパスワード（確認）", "en": "New password again"},
    "password_rules": {
        "ja": "8文字以上。変更すると、このセッション以外はすべてログアウトされます。",
        "en": "At least 8 characters. Changing it logs out every other session.",
    },
    "password_changed": {"ja": "パスワードを変更しました", "en": "Password changed"},
    "sessions_ended": {"ja": "終了した他のセッション：N件", "en": "Other sessions ended: N"},
    "passwords_differ": {"ja": "新しいパスワードが一致しません", "en": "The new passwords do not match"},
    "password_too_short": {
        "ja": "パスワードは8文字以上にしてください",
        "en": "A password needs at least 8 characters",
    },
    "wrong_current_password": {"ja": "現在のパスワードが違います", "en": "The current password is wrong"},
}


# the karte (admin/karte.py, templates/karte.html)
_TEXT |= {
    "k_spend": {"ja": "累計購入金額", "en": "Lifetime spend"},
    "k_purchases": {"ja": "購入回数", "en": "Purchases"},
    "k_online": {"ja": "オンライン", "en": "online"},
    "k_store": {"ja": "店舗", "en": "store"},
    "k_last_purchase": {"ja": "最終購入", "en": "Last purchase"},
    "k_store_visits": {"ja": "来店回数", "en": "Store visits"},
    "k_shopping": {"ja": "買い物の傾向", "en": "How they shop"},
    "k_categories_viewed": {"ja": "よく見るカテゴリ", "en": "Categories viewed"},
    "k_products_viewed": {"ja": "よく見る商品", "en": "Products viewed"},
    "k_category_bought": {"ja": "よく買うカテゴリ", "en": "Category bought most"},
    "k_stores": {"ja": "利用した店舗", "en": "Stores"},
    "visit_segments": {"ja": "セグメントの変化", "en": "Segment changes"},
    # the people list and the live page
    "people_found": {"ja": "「{q}」に一致: {n} 人", "en": "{n} people match “{q}”"},
    "people_total": {"ja": "顧客 {n} 人（最近の活動順）", "en": "{n} people, most recently active first"},
    "matched": {"ja": "一致した項目", "en": "Matched on"},
}


# the quarantine: what the workspace could not take (admin/views.py quarantine)
_TEXT |= {
    "quarantine": {"ja": "取り込めなかったデータ", "en": "Set aside"},
    "quarantine_notice": {
        "ja": "取り込めなかったデータが {n} 件あります。内容と理由を確認してください。",
        "en": "Set aside: {n}. These could not be taken; check what they are and why.",
    },
    "quarantine_lead": {
        "ja": "サーバー側の不具合で取り込めなかったイベントや、分析ストアに書き込めなかった行です。"
        "送信元には参照番号付きで通知済みです。ログの同じ参照番号で詳細を確認できます。",
        "en": "Events the server failed on and rows the analytics store could not write. Their senders"
        " were told, with the reference; the server log gives the same reference with the details.",
    },
    "quarantine_empty": {"ja": "取り込めなかったデータはありません", "en": "Nothing was set aside"},
    "source": {"ja": "発生元", "en": "Source"},
    "source_engine": {"ja": "エンジン（送信元へ拒否済み）", "en": "Engine (refused to the sender)"},
    "source_analytics": {"ja": "分析ストア（ログには保存済み）", "en": "Analytics store (kept in the log)"},
    "source_checkpoint": {"ja": "チェックポイント（数値を調整）", "en": "Checkpoint (numbers adjusted)"},
    "source_definition": {"ja": "定義（読み込めず停止中）", "en": "Definition (no longer parses: off)"},
    "reason": {"ja": "理由", "en": "Reason"},
    "reference": {"ja": "参照番号", "en": "Reference"},
    "message_id": {"ja": "メッセージID", "en": "Message id"},
    "show_body": {"ja": "内容を表示", "en": "Show the data"},
    "older": {"ja": "さらに古いもの", "en": "Older"},
}


# the builder's warnings: a rule naming what the workspace never saw (admin/segments.py,
# static/builder.js); {name} and {event} are filled in by the script
_TEXT |= {
    "did_you_mean": {"ja": "候補", "en": "Did you mean"},
    "page_views": {"ja": "ページビュー", "en": "page views"},
    "screen_views": {"ja": "アプリ画面表示", "en": "screen views"},
    "events_count": {"ja": "{n}件", "en": "{n} events"},
    "warnings_title": {"ja": "記録にない名前", "en": "Names never seen"},
    "warn_unknown_event": {
        "ja": "イベント「{name}」はこのワークスペースで記録されていません（この条件に当てはまる人は0人）",
        "en": "No “{name}” event has been seen in this workspace (nobody matches this condition)",
    },
    "warn_unknown_channel": {
        "ja": "チャネル「{name}」のイベントは記録されていません",
        "en": "No event has been seen on channel “{name}”",
    },
    "warn_unknown_channel_on": {
        "ja": "「{event}」はチャネル「{name}」では記録されていません",
        "en": "No “{event}” event has been seen on channel “{name}”",
    },
    "warn_unknown_store": {
        "ja": "店舗「{name}」のイベントは記録されていません",
        "en": "No event has been seen at store “{name}”",
    },
    "warn_unknown_store_on": {
        "ja": "「{event}」は店舗「{name}」では記録されていません",
        "en": "No “{event}” event has been seen at store “{name}”",
    },
    "warn_unknown_property": {
        "ja": "「{event}」イベントにプロパティ「{name}」は見当たりません",
        "en": "No “{event}” event has a property “{name}”",
    },
    "warn_unknown_value": {
        "ja": "値「{name}」は記録されていません",
        "en": "The value “{name}” has not been seen",
    },
    "warn_unknown_field": {
        "ja": "ユーザーデータ項目「{name}」は見当たりません",
        "en": "No user data field “{name}”",
    },
    "warn_unknown_trait": {
        "ja": "属性「{name}」を持つ顧客はいません",
        "en": "Nobody has the trait “{name}”",
    },
    "warn_unknown_computed": {
        "ja": "計算属性「{name}」は定義されていません",
        "en": "No computed trait “{name}” is defined",
    },
    "warn_unknown_segment": {
        "ja": "セグメント「{name}」は定義されていません",
        "en": "No segment “{name}” is defined",
    },
}


def wait_text(lang: str, ms: int) -> str:
    """A wait in words: '30秒', '2分'; '30 seconds', '2 minutes' (rounded up)."""
    seconds = max(1, -(-ms // 1000))
    if seconds < 90:
        n, unit = seconds, ("秒", " second")
    else:
        n, unit = -(-seconds // 60), ("分", " minute")
    if lang == "ja":
        return f"{n}{unit[0]}"
    return f"{n}{unit[1]}{'' if n == 1 else 's'}"


# the Datahub pages (admin/datahub.py)
_TEXT.update(
    {
        "datahub": {"ja": "データハブ", "en": "Datahub"},
        "datahub_lead": {
            "ja": "会員・POS・商品などの自社データを取り込み、イベントや顧客と一緒に使えます。"
            "読めなかった行は行番号と理由つきで残ります。",
            "en": "Bring in your own data — members, POS receipts, products — to use with events and people. "
            "Rows that cannot be read are kept with their line and reason.",
        },
        "dh_file": {"ja": "ファイル", "en": "File"},
        "dh_formats": {
            "ja": "CSV・TSV（UTF-8／Shift_JIS）、Excel、Parquet、JSON Lines",
            "en": "CSV, TSV (UTF-8 or Shift_JIS), Excel, Parquet, JSON Lines",
        },
        "dh_table": {"ja": "テーブル", "en": "Table"},
        "dh_table_rule": {
            "ja": "半角英小文字・数字・_（例: members）",
            "en": "lower-case letters, digits and _ (e.g. members)",
        },
        "dh_mode": {"ja": "取り込み方", "en": "Mode"},
        "dh_mode_append": {"ja": "追加", "en": "Append"},
        "dh_mode_upsert": {"ja": "キーで更新（upsert）", "en": "Update by key (upsert)"},
        "dh_mode_replace": {"ja": "置き換え", "en": "Replace"},
        "dh_mode_rollback": {"ja": "ロールバック", "en": "Rollback"},
        "dh_key": {"ja": "キー列", "en": "Key column"},
        "dh_key_hint": {
            "ja": "更新のとき、同じ行を見分ける列（カンマ区切りで複数可）",
            "en": "for upsert: the column(s) that identify a row, comma-separated",
        },
        "dh_advanced": {"ja": "詳細設定", "en": "More options"},
        "dh_encoding": {"ja": "文字コード", "en": "Encoding"},
        "dh_enc_auto": {"ja": "自動判定", "en": "Detect"},
        "dh_header": {"ja": "1行目は見出し", "en": "First row is a header"},
        "dh_types": {"ja": "列の型", "en": "Column types"},
        "dh_types_hint": {
            "ja": "列名:型（text, integer, number, boolean, date, timestamp）。指定しない列は自動判定",
            "en": "column:type (text, integer, number, boolean, date, timestamp); others are inferred",
        },
        "dh_import": {"ja": "取り込む", "en": "Import"},
        "dh_uploading": {"ja": "送信中…", "en": "Uploading…"},
        "dh_reading": {"ja": "読み込み中…", "en": "Reading…"},
        "dh_failed": {"ja": "取り込めませんでした", "en": "Not imported"},
        "dh_imported": {"ja": "取り込んだ行", "en": "Imported"},
        "dh_rejected": {"ja": "読めなかった行", "en": "Rejected"},
        "dh_rows_total": {"ja": "テーブルの行数", "en": "Rows in the table"},
        "dh_read_as": {"ja": "文字コード", "en": "Read as"},
        "dh_open_table": {"ja": "テーブルを開く", "en": "Open the table"},
        "dh_line": {"ja": "行", "en": "Line"},
        "dh_column": {"ja": "列", "en": "Column"},
        "dh_reason": {"ja": "理由", "en": "Reason"},
        "dh_text": {"ja": "内容", "en": "Text"},
        "dh_whole_row": {"ja": "（行全体）", "en": "(whole row)"},
        "dh_hint": {
            "ja": "{column} は文字列として取り込みました（{values} 件中 {fits} 件が {type}）。"
            "型に {column}:{type} を指定すると、残りは読めなかった行になります",
            "en": "{column} was read as text ({fits} of {values} values are {type}); "
            "give the type {column}:{type} to reject the others instead",
        },
        "dh_tables": {"ja": "テーブル", "en": "Tables"},
        "dh_rows": {"ja": "行", "en": "rows"},
        "dh_rows_h": {"ja": "行数", "en": "Rows"},
        "dh_columns": {"ja": "列", "en": "Columns"},
        "dh_version": {"ja": "版", "en": "Version"},
        "dh_updated": {"ja": "更新", "en": "Updated"},
        "dh_no_tables": {
            "ja": "まだテーブルはありません。上のフォームからファイルを取り込めます。",
            "en": "No tables yet: import a file with the form above.",
        },
        "dh_first_rows": {"ja": "先頭の行", "en": "First rows"},
        "dh_rejects": {"ja": "読めなかった行", "en": "Rejected rows"},
        "dh_rejects_csv": {"ja": "CSVでダウンロード（Excelで開けます）", "en": "Download as CSV (opens in Excel)"},
        "dh_no_rejects": {"ja": "この版で読めなかった行はありません", "en": "No row of this version was rejected"},
        "dh_history": {"ja": "版の履歴", "en": "Versions"},
        "dh_when": {"ja": "日時", "en": "When"},
        "dh_source": {"ja": "取り込み元", "en": "Source"},
        "dh_current": {"ja": "現在", "en": "current"},
        "dh_rollback": {"ja": "この版に戻す", "en": "Roll back to this"},
        "dh_rolled_back": {"ja": "戻しました:", "en": "Rolled back to"},
        "dh_pruned": {"ja": "削除済み", "en": "pruned"},
        "yes": {"ja": "はい", "en": "Yes"},
        "no": {"ja": "いいえ", "en": "No"},
        "type_text": {"ja": "文字列", "en": "text"},
        "type_integer": {"ja": "整数", "en": "integer"},
        "type_number": {"ja": "数値", "en": "number"},
        "type_boolean": {"ja": "真偽", "en": "boolean"},
        "type_date": {"ja": "日付", "en": "date"},
        "type_timestamp": {"ja": "日時", "en": "timestamp"},
    }
)


def translator(lang: str):  # type: ignore[no-untyped-def]
    def t(key: str) -> str:
        entry = _TEXT.get(key)
        return entry.get(lang, entry["en"]) if entry else key

    return t


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "ja"
