#!/usr/bin/env python3
"""Writes the content-policy corpus (tests/corpus/*.eml). Run from this directory.

Every message is addressed seller -> buyer alias on m.example.com; the hosts
and addresses that must not survive are listed in tests/content_policy.rs."""
import base64, quopri

def qp(s: bytes) -> bytes:
    return quopri.encodestring(s).replace(b"\n", b"\r\n")

def b64(s: bytes) -> bytes:
    e = base64.encodebytes(s).replace(b"\n", b"\r\n")
    return e

def crlf(s: str) -> str:
    return s.replace("\r\n", "\n").replace("\n", "\r\n")

HEAD = """From: Shop <cs@shop-seller.example>
To: abcdefghijklmno@m.example.com
Subject: {subject}
Date: Mon, 23 Nov 2026 10:00:00 +0000
Message-ID: <{mid}@shop-seller.example>
MIME-Version: 1.0
"""

def write(name, subject, ctype_lines, body: bytes):
    head = crlf(HEAD.format(subject=subject, mid=name) + ctype_lines + "\n")
    with open(name + ".eml", "wb") as f:
        f.write(head.encode() + b"\r\n" + body)

# 1. clean ~2 KB plain text (nothing to do)
para = ("Thank you for your order 114-1234567-1234567. It ships on 2026-11-23 "
        "(23/11/2026) at 14:30; the total was $1,234.56 (KRW 12,000 per item, "
        "qty 3). Postcode 06236. Reply to this message if anything is wrong.\n")
write("clean_text", "Your order", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit",
      crlf("Hello,\n\n" + para * 8 + "\nBest regards,\nThe shop\n").encode())

# 2. marketing HTML, ~20 KB, pixels, click tracking, logos, CSS loads
block = """<tr><td class="item" style="padding:10px;background-image:url('https://img.tracker-cdn.example/bg/{i}.png')">
<a href="https://click.tracker-mail.example/ls/click?upn=aHR0cHM6Ly9zaG9wLmV4YW1wbGUvcC97aX0&amp;id={i}"><img src="https://img.tracker-cdn.example/p/{i}.jpg" width="120" alt="Product {i}"></a>
<p style="font-family:Arial;color:#333333">Product {i} &mdash; now only &#36;{i}9.99. <a href="https://click.tracker-mail.example/r/{i}" style="color:#0066cc">Shop now</a></p>
<img src="https://open.tracker-mail.example/o/{i}.gif" width="1" height="1" style="display:none">
</td></tr>
"""
html = """<!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-com:vml"><head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<link rel="stylesheet" href="https://fonts.tracker-cdn.example/css?family=Roboto">
<style>@import url("https://fonts.tracker-cdn.example/x.css"); body{margin:0} .hero{background:url(https://img.tracker-cdn.example/hero.jpg) no-repeat}</style>
<base href="https://shop-site.com/">
</head><body>
<div style="display:none">Preheader: big sale, call +1 (555) 123-4567</div>
<table width="600"><tr><td><a href="https://www.shop-site.com/?utm_source=mail"><img src="https://img.tracker-cdn.example/logo.png" alt="Shop logo"></a></td></tr>
""" + "".join(block.format(i=i) for i in range(30)) + """
<tr><td>Questions? Mail <a href="mailto:help@shop-site.com">help@shop-site.com</a> or call 010-1234-5678.
Visit www.shop-site.com or shop-site.com/sale.
<!--[if mso]><v:rect style="width:600px"><v:fill type="frame" src="https://img.tracker-cdn.example/vml.png"/></v:rect><![endif]-->
</td></tr></table>
<img src="https://open.tracker-mail.example/o/final.gif" width="1" height="1">
</body></html>
"""
text = ("BIG SALE at https://click.tracker-mail.example/r/text?u=1 - call +44 20 7946 0958 or write "
        "help@shop-site.com. Order 114-1234567-1234567.\n")
body = crlf("""--alt1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

""").encode() + qp(text.encode()) + crlf("""
--alt1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

""").encode() + qp(html.encode()) + b"\r\n--alt1--\r\n"
write("marketing", "Big sale", 'Content-Type: multipart/alternative; boundary="alt1"', body)

# 3. Gmail-style: related(alternative(text, html), inline image)
png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
g_text = "Hi,\n\nyour parcel leaves today.\n\n--\nKim Seller | 010-9876-5432 | https://kimshop.co.kr\n"
g_html = ('<div dir="ltr">Hi,<div><br></div><div>your parcel leaves today.</div><div><img src="cid:ii_lp1abc" alt="parcel.png" width="200"><br></div>'
          '<br><div class="gmail_signature" data-smartmail="gmail_signature"><div dir="ltr">Kim Seller | 010-9876-5432 | '
          '<a href="https://kimshop.co.kr" target="_blank">kimshop.co.kr</a> | <a href="mailto:kim.seller@gmail.com">kim.seller@gmail.com</a></div></div></div>\n')
body = crlf("""--rel1
Content-Type: multipart/alternative; boundary="alt2"

--alt2
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

""").encode() + qp(g_text.encode()) + crlf("""
--alt2
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

""").encode() + qp(g_html.encode()) + crlf("""
--alt2--

--rel1
Content-Type: image/png; name="parcel.png"
Content-Disposition: inline; filename="parcel.png"
Content-Transfer-Encoding: base64
Content-ID: <ii_lp1abc>
X-Attachment-Id: ii_lp1abc

""").encode() + b64(png) + b"--rel1--\r\n"
write("gmail", "Your parcel", 'Content-Type: multipart/related; boundary="rel1"', body)

# 4. Outlook-style: windows-1252 QP HTML, conditional comments, VML, image001.png
o_html = ("""<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" xmlns="http://www.w3.org/TR/REC-html40">
<head><meta http-equiv=Content-Type content="text/html; charset=windows-1252"><style><!--
p.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;}
--></style><!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit" spidmax="1026" /></xml><![endif]--></head>
<body lang=EN-GB link="#0563C1"><div class=WordSection1><p class=MsoNormal>Dear customer,<o:p></o:p></p>
<p class=MsoNormal>Caf\xe9 cr\xe8me arrives Tuesday. For questions: +82 2-1234-5678 or <a href="mailto:lee@shop-seller.example">lee@shop-seller.example</a><o:p></o:p></p>
<p class=MsoNormal><img width=100 height=40 id="Picture_x0020_1" src="cid:image001.png@01DA1E2F.3A4B5C60" alt="Logo"><o:p></o:p></p>
<!--[if mso]><v:roundrect href="https://outlook-track.example/b" style="width:200px"><v:fill src="https://outlook-track.example/f.png"/></v:roundrect><![endif]-->
</div></body></html>
""").encode("cp1252")
body = crlf("""--rel2
Content-Type: text/html; charset="windows-1252"
Content-Transfer-Encoding: quoted-printable

""").encode() + qp(o_html) + crlf("""
--rel2
Content-Type: image/png; name="image001.png"
Content-Description: image001.png
Content-Disposition: inline; filename="image001.png"
Content-ID: <image001.png@01DA1E2F.3A4B5C60>
Content-Transfer-Encoding: base64

""").encode() + b64(png) + b"--rel2--\r\n"
write("outlook", "Delivery", 'Content-Type: multipart/related; type="text/html"; boundary="rel2"', body)

# 5. QP soft breaks inside a URL and an address
soft = (b"Track it at https://parcel-tra=\r\ncker.example/t/1 or write bob.sel=\r\nler@gm=\r\nail.com, "
        b"phone 010-12=\r\n34-5678.\r\n")
write("qp_soft_breaks", "QP", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable", soft)

# 6. base64 text and HTML
b_text = "Pay via https://pay-elsewhere.example/invoice/9 or call 02-123-4567. Mail: pay@pay-elsewhere.example\n"
b_html = '<p>Pay <a href="https://pay-elsewhere.example/invoice/9">here</a> &middot; <img src="https://pay-elsewhere.example/px.gif"> pay@pay-elsewhere.example</p>'
body = crlf("""--b64
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

""").encode() + b64(b_text.encode()) + crlf("""--b64
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

""").encode() + b64(b_html.encode()) + b"--b64--\r\n"
write("base64_parts", "Invoice", 'Content-Type: multipart/alternative; boundary="b64"', body)

# 7. nested: mixed(related(alternative(text, html), image), pdf, exe)
pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
body = crlf("""This is a multi-part message in MIME format.
--m1
Content-Type: multipart/related; boundary="m2"

--m2
Content-Type: multipart/alternative; boundary="m3"

--m3
Content-Type: text/plain; charset=utf-8

See the invoice. Call me: 010-1111-2222.
--m3
Content-Type: text/html; charset=utf-8

<p>See the invoice. <img src="cid:logo1"> Call me: 010-1111-2222. <img src="https://nested-track.example/p.gif"></p>
--m3--

--m2
Content-Type: image/gif
Content-ID: <logo1>
Content-Transfer-Encoding: base64

R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==
--m2--

--m1
Content-Type: application/pdf; name="invoice.pdf"
Content-Disposition: attachment; filename="invoice.pdf"
Content-Transfer-Encoding: base64

""").encode() + b64(pdf) + crlf("""--m1
Content-Type: application/x-msdownload; name="tool.exe"
Content-Disposition: attachment; filename="tool.exe"
Content-Transfer-Encoding: base64

TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA==
--m1--
""").encode()
write("nested", "Invoice attached", 'Content-Type: multipart/mixed; boundary="m1"', body)

# 8. odd charsets
for name, cs, txt in [
    ("iso-8859-1", "iso-8859-1", "Caf\xe9 cr\xe8me, t\xe9l: +33 1 23 45 67 89, \xe9crivez \xe0 jean@caf\xe9-shop.example ou www.cafe-shop.example\n"),
    ("euc-kr", "euc-kr", "안녕하세요, 주문 114-1234567-1234567 배송 안내입니다. 연락처: 010-1234-5678, 이메일 kim@naver.com, 홈페이지 https://kimshop-kr.example\n"),
    ("shift_jis", "shift_jis", "ご注文ありがとうございます。お問い合わせ: 03-1234-5678、メール tanaka@shop-jp.example、 https://shop-jp.example/\n"),
]:
    write("charset_" + name, "Charset " + name,
          f"Content-Type: text/plain; charset={cs}\nContent-Transfer-Encoding: 8bit", txt.encode(cs).replace(b"\n", b"\r\n"))

# 9. renamed executables
body = crlf("""--x1
Content-Type: text/plain; charset=utf-8

Invoice attached.
--x1
Content-Type: application/pdf; name="invoice.pdf.exe"
Content-Disposition: attachment; filename="invoice.pdf.exe"
Content-Transfer-Encoding: base64

TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA==
--x1
Content-Type: application/pdf; name="setup.exe"
Content-Disposition: attachment; filename="setup.exe"
Content-Transfer-Encoding: base64

TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA==
--x1
Content-Type: application/pdf; name="receipt.pdf"
Content-Disposition: attachment; filename="receipt.pdf"
Content-Transfer-Encoding: base64

TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA==
--x1
Content-Type: application/pdf; name="call 010-1234-5678.pdf"
Content-Disposition: attachment; filename="call 010-1234-5678.pdf"
Content-Transfer-Encoding: base64

""").encode() + b64(pdf) + b"--x1--\r\n"
write("renamed_executable", "Invoice", 'Content-Type: multipart/mixed; boundary="x1"', body)

# 10. forwarded message
body = crlf("""--f1
Content-Type: text/plain; charset=utf-8

See below.
--f1
Content-Type: message/rfc822

From: Other Buyer <other.buyer@gmail.com>
To: cs@shop-seller.example
Subject: question

Hi, it's me, 010-5555-6666.
--f1--
""").encode()
write("forwarded", "Fwd", 'Content-Type: multipart/mixed; boundary="f1"', body)
